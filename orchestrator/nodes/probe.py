"""probe: truesight readouts of every usable response, from the local worker.

Trained probes named under `probes.train` are trained first, by the worker on its own model from
the data files frozen in the run directory (an identical probe already on the worker is reused).
Then, for each probe the protocol runs, responses not yet read are sent in batches; `linear` and
`tokens` run once per trained probe and are stored as `linear:<name>`. Results (or why there is
none, e.g. a text longer than the model's context) go to records.sqlite, where the analysis
summarises them per cell and verdicts can cite them by id.
"""

from __future__ import annotations

import hashlib

from langgraph.runtime import Runtime

from agents.truesight import (
    TRAINED,
    ProbeReadout,
    TruesightClient,
    WorkerError,
    readout,
    text_sha256,
    worker_probe_name,
)
from orchestrator.context import RunContext
from orchestrator.errors import UserError
from orchestrator.nodes.conversation import generated_replies, transcript
from orchestrator.nodes.probe_validity import (
    RANDOM_SEED,
    log_readouts,
    record_probe,
    transfer_readouts,
)
from orchestrator.progress import finish_stage
from orchestrator.records import Item, ProbeSource
from orchestrator.state import RunState

UNPROBEABLE = {"errored", "empty"}


def probe(state: RunState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    spec = ctx.protocol.probes
    if spec is None:
        finish_stage(ctx.run, "probe", {"skipped": 1}, "No probes in the protocol.")
        return {"stage": "probe"}
    rec = ctx.run.records
    responses, screen = rec.responses(), rec.screen()
    items = [i for i in rec.items() if not set(screen.get(i.id, ["errored"])) & UNPROBEABLE]
    contexts = _contexts(ctx, items)
    counts: dict[str, int] = {}
    client = ctx.truesight()
    try:
        trained = ensure_trained(ctx, client) if set(spec.run) & set(TRAINED) else {}
        for probe_name in spec.run:
            if probe_name in TRAINED:
                plan = [(readout(probe_name, t), {"probe": w}) for t, w in trained.items()]
            else:
                plan = [(probe_name, spec.params.get(probe_name, {}))]
            for name, params in plan:
                done = {r.item_id for r in rec.probe_results(name, ProbeSource.STAGE)}
                todo = [i for i in items if i.id not in done]
                ctx.progress.start(f"probe {name}", len(items), len(items) - len(todo))
                for start in range(0, len(todo), spec.batch_size):
                    if ctx.stop.is_set():
                        raise KeyboardInterrupt
                    batch = todo[start : start + spec.batch_size]
                    _run_batch(ctx, client, name, probe_name, params, batch, responses, contexts)
                    ctx.progress.advance(f"probe {name}", len(batch))
                ctx.progress.stop(f"probe {name}")
                stage = rec.probe_results(name, ProbeSource.STAGE)
                counts[name] = sum(1 for r in stage if r.error is None)
    finally:
        client.close()
    failed = sum(1 for r in rec.probe_results(source=ProbeSource.STAGE) if r.error)
    text = f"Probed {len(items)} responses: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    if failed:
        text += f"; {failed} readouts failed (see probe_results.error)"
    finish_stage(ctx.run, "probe", {**counts, "failed": failed}, text)
    return {"stage": "probe"}


def trained_name(ctx: RunContext, name: str) -> str:
    """The worker's name for the protocol's trained probe `name`: its recipe and the hashes of
    its data, so a changed dataset is a new probe."""
    t = ctx.protocol.probes.train[name]
    sha = hashlib.sha256(ctx.run.path(t.dataset).read_bytes()).hexdigest()
    control = ctx.run.path(t.control).read_bytes() if t.control else None
    control_sha = hashlib.sha256(control).hexdigest() if control is not None else None
    return worker_probe_name(name, sha, t.variant, t.layer, t.c, control_sha)


def trained_probes(ctx: RunContext) -> dict[str, str]:
    """The protocol's probes the probe stage trained (their probe.json is in artifacts/probes),
    by their names on the worker: what an evaluator's tool may apply."""
    spec = ctx.protocol.probes
    if spec is None:
        return {}
    folder = ctx.run.path("artifacts", "probes")
    return {n: trained_name(ctx, n) for n in spec.train if (folder / f"{n}.json").exists()}


def ensure_trained(ctx: RunContext, client: TruesightClient) -> dict[str, str]:
    """Have the worker train the protocol's probes (or find them), with their random-weight
    controls and transfer sets; their names on the worker.

    Each probe's probe.json, with what the controls found and the zero-shot readouts on its
    transfer set, goes to artifacts/probes/<name>.json, and its figures and verdict into LOG.md
    (see probe_validity).
    """
    spec = ctx.protocol.probes
    names: dict[str, str] = {}
    replies: dict[str, dict] = {}
    for name, t in spec.train.items():
        data = ctx.run.path(t.dataset).read_bytes()
        control = ctx.run.path(t.control).read_bytes() if t.control else None
        transfer = ctx.run.path(t.transfer).read_bytes() if t.transfer else None
        worker_name = trained_name(ctx, name)
        ctx.progress.start(f"train probe {name}", 1, 0)
        try:
            replies[name] = client.train(
                worker_name,
                data.decode("utf-8", errors="replace"),
                source=t.dataset,
                variant=t.variant,
                layer=t.layer,
                c=t.c,
                control=control.decode("utf-8", errors="replace") if control is not None else None,
                transfer=transfer.decode("utf-8", errors="replace") if transfer else None,
                transfer_source=t.transfer or "transfer.jsonl",
                random_seed=RANDOM_SEED,
            )
        except WorkerError as e:
            if e.status >= 500:
                raise
            raise UserError(f"probes.train.{name}: the worker cannot train it: {e.message}") from e
        finally:
            ctx.progress.stop(f"train probe {name}")
        names[name] = worker_name
    frozen = ctx.run.path  # the run's copies of the data files
    readouts = transfer_readouts(spec, lambda rel: frozen(rel).read_bytes(), client, CONDITIONED)
    for name, t in spec.train.items():
        record_probe(ctx, name, t, replies[name], readouts.get(t.transfer or "", []))
    log_readouts(ctx, readouts)
    return names


def _contexts(ctx: RunContext, items: list[Item]) -> dict[str, str] | None:
    """Each item's context for the probes that read one (`probes.context`): what the subject
    read before its reply — for a conversation, every turn of it, its own earlier turns
    included."""
    if ctx.protocol.probes is None or ctx.protocol.probes.context == "none":
        return None
    generated = generated_replies(ctx.run.records, items)
    return {i.id: transcript(i, generated.get(i.id, [])) + "\n\n" for i in items}


CONDITIONED = {"surprisal", *TRAINED}
"""Probes that read the response with the subject's prompt as context (probes.context)."""


def _run_batch(
    ctx: RunContext,
    client: TruesightClient,
    name: str,
    probe: str,
    params: dict,
    batch: list[Item],
    responses: dict,
    by_item: dict[str, str] | None,
) -> None:
    texts = [responses[i.id].text for i in batch]
    contexts = None
    if probe in CONDITIONED and by_item is not None:
        contexts = [by_item[i.id] for i in batch]
    try:
        reply = client.run(probe, texts, contexts, params)
    except WorkerError as e:
        if e.status >= 500 or len(batch) == 1:
            if e.status >= 500:
                raise
            item = batch[0]
            sha = text_sha256(texts[0], contexts[0] if contexts else None)
            failed = ProbeReadout(item.id, name, "?", params, sha, None, e.message)
            ctx.run.records.add_probe_result(failed)
            ctx.log("probe", "error", f"{name} on {item.id}: {e.message}")
            return
        for one in batch:  # one text in the batch is unusable: find it, keep the others
            _run_batch(ctx, client, name, probe, params, [one], responses, by_item)
        return
    for k, (item, result) in enumerate(zip(batch, reply.results, strict=True)):
        sha = text_sha256(texts[k], contexts[k] if contexts else None)
        kept = ProbeReadout(item.id, name, reply.model, params, sha, result)
        ctx.run.records.add_probe_result(kept)
