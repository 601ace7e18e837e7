"""Reading one batch of responses with every probe the protocol runs, in one worker request.

The worker reads each response once for all its probes (POST /v1/readouts). Probes in
CONDITIONED read the response after the subject's prompt (probes.context); author and follow-up
read the response alone, as they always have. A readout the worker could not make for one
response (too long, say) is stored with its error; a request the worker refuses as a whole is
retried one probe at a time, so a protocol's bad parameters fail only that probe's readouts.
"""

from __future__ import annotations

from agents.truesight import (
    TRAINED,
    ProbeReadout,
    ReadoutSpec,
    TruesightClient,
    WorkerError,
    readout,
    text_sha256,
)
from orchestrator.context import RunContext
from orchestrator.records import Item, ProbeSource

CONDITIONED = {"surprisal", *TRAINED}
"""Probes that read the response with the subject's prompt as context (probes.context)."""


def plan(ctx: RunContext, trained: dict[str, str]) -> list[ReadoutSpec]:
    """The readouts the protocol asks of each response, named as they are stored: the probe,
    or `linear:<name>` once per trained probe."""
    spec = ctx.protocol.probes
    out = []
    for probe in spec.run:
        if probe in TRAINED:
            out += [
                ReadoutSpec(readout(probe, t), probe, {"probe": w}, True)
                for t, w in trained.items()
            ]
        else:
            out.append(ReadoutSpec(probe, probe, spec.params.get(probe, {}), probe in CONDITIONED))
    return out


def missing(ctx: RunContext, specs: list[ReadoutSpec], items: list[Item]) -> dict[str, set[str]]:
    """For each item, the names of the readouts the probe stage has not stored yet."""
    have: dict[str, set[str]] = {}
    for s in specs:
        for r in ctx.run.records.probe_results(s.name, ProbeSource.STAGE):
            have.setdefault(r.item_id, set()).add(s.name)
    names = {s.name for s in specs}
    return {i.id: names - have.get(i.id, set()) for i in items if names - have.get(i.id, set())}


def read_batch(
    ctx: RunContext,
    client: TruesightClient,
    specs: list[ReadoutSpec],
    batch: list[Item],
    texts: list[str],
    contexts: list[str] | None,
    wanted: dict[str, set[str]],
) -> None:
    """Ask for the readouts any item of the batch still lacks and store each item's own."""
    asked = [s for s in specs if any(s.name in wanted[i.id] for i in batch)]
    try:
        reply = client.readouts(texts, asked, contexts)
    except WorkerError as e:
        if e.status >= 500:
            raise
        if len(asked) > 1:
            for one in asked:
                read_batch(ctx, client, [one], batch, texts, contexts, wanted)
            return
        (spec,) = asked
        for k, item in enumerate(batch):
            if spec.name in wanted[item.id]:
                _store(ctx, item, spec, "?", _sha(spec, texts, contexts, k), None, e.message)
        return
    for k, (item, row) in enumerate(zip(batch, reply.results, strict=True)):
        for spec in asked:
            if spec.name in wanted[item.id]:
                got = row[spec.name]
                sha = _sha(spec, texts, contexts, k)
                _store(ctx, item, spec, reply.model, sha, got["result"], got["error"])


def _sha(spec: ReadoutSpec, texts: list[str], contexts: list[str] | None, k: int) -> str:
    return text_sha256(texts[k], contexts[k] if contexts and spec.context else None)


def _store(
    ctx: RunContext,
    item: Item,
    spec: ReadoutSpec,
    model: str,
    sha: str,
    result: dict | None,
    error: str | None,
) -> None:
    ctx.run.records.add_probe_result(
        ProbeReadout(item.id, spec.name, model, spec.params, sha, result, error)
    )
    if error is not None:
        ctx.log("probe", "error", f"{spec.name} on {item.id}: {error}")
