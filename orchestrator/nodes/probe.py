"""probe: truesight readouts of every usable response, from the local worker.

Trained probes named under `probes.train` are trained first (node `probe`), by the worker on its
own model from the data files frozen in the run directory (an identical probe already on the
worker is reused); the evaluators' truesight tool offers them, so they are trained before any
evaluator starts. Then the readouts: with a local judge, in `probe` itself, before evaluation
(the judge would compete with them for the worker's one model thread); with a remote judge, in
`readouts`, which evaluate's fan-out sends beside the evaluator batches, so the worker reads
while the judges judge, and `evaluate_done` waits for both.

Responses not yet read are sent in batches, each batch in one request for every probe the
protocol runs (the worker reads each response once for all of them; see probe_read); `linear`
and `tokens` run once per trained probe and are stored as `linear:<name>`. Results (or why there is
none, e.g. a text longer than the model's context) go to records.sqlite, where the analysis
summarises them per cell and verdicts can cite them by id.
"""

from __future__ import annotations

import hashlib

from langgraph.runtime import Runtime

from agents.truesight import (
    TRAINED,
    TruesightClient,
    WorkerError,
    WorkersDisagree,
    worker_probe_name,
)
from orchestrator.context import RunContext
from orchestrator.errors import UserError
from orchestrator.nodes import probe_read
from orchestrator.nodes.conversation import generated_replies, transcript
from orchestrator.nodes.probe_read import CONDITIONED
from orchestrator.nodes.probe_validity import (
    RANDOM_SEED,
    log_readouts,
    record_probe,
    transfer_readouts,
)
from orchestrator.progress import finish_stage
from orchestrator.records import Item, ProbeSource, StageStatus
from orchestrator.state import RunState

UNPROBEABLE = {"errored", "empty"}


def probe(state: RunState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    if ctx.protocol.probes is None:
        finish_stage(ctx.run, "probe", {"skipped": 1}, "No probes in the protocol.")
        return {"stage": "probe"}
    client = ctx.truesight()
    try:
        trained = ensure_trained(ctx, client) if set(ctx.protocol.probes.run) & set(TRAINED) else {}
    finally:
        client.close()
    if beside_evaluation(ctx):
        text = (
            "Readouts run beside the evaluators (the judge is remote): the report waits for both."
        )
        ctx.log("probe", "plan", text)
        return {}
    return read_all(ctx, trained)


def readouts(state: RunState, runtime: Runtime[RunContext]) -> RunState:
    """The readouts beside the evaluators, sent by evaluate's fan-out while the probe stage is
    unfinished: a re-run (a resume, the evaluate checkpoint sending its stage back) asks only
    for the readouts not stored yet, and one that finds the stage done does nothing."""
    ctx = runtime.context
    done = ctx.run.records.stages().get("probe")
    if done is not None and done.status == StageStatus.DONE:
        return {}
    return read_all(ctx, trained_probes(ctx))


def beside_evaluation(ctx: RunContext) -> bool:
    """Whether the readouts run beside the evaluators: only with a remote judge (a local one
    shares the worker's model thread with them) and unless RESEARCH_OVERLAP_PROBES=0."""
    return ctx.protocol.evaluation.judge.provider != "local" and ctx.settings.overlap_probes


def read_all(ctx: RunContext, trained: dict[str, str]) -> RunState:
    """Read every usable response not read yet, store each batch's readouts as they come, and
    finish the stage."""
    spec = ctx.protocol.probes
    rec = ctx.run.records
    responses, screen = rec.responses(), rec.screen()
    items = [i for i in rec.items() if not set(screen.get(i.id, ["errored"])) & UNPROBEABLE]
    contexts = _contexts(ctx, items)
    specs = probe_read.plan(ctx, trained)
    wanted = probe_read.missing(ctx, specs, items)
    todo = [i for i in items if i.id in wanted]
    client = ctx.truesight()
    try:
        ctx.progress.start("probe", len(items), len(items) - len(todo))
        for start in range(0, len(todo), spec.batch_size):
            if ctx.stop.is_set():
                raise KeyboardInterrupt
            batch = todo[start : start + spec.batch_size]
            texts = [responses[i.id].text for i in batch]
            conditioned = [contexts[i.id] for i in batch] if contexts is not None else None
            probe_read.read_batch(ctx, client, specs, batch, texts, conditioned, wanted)
            ctx.progress.advance("probe", len(batch))
        ctx.progress.stop("probe")
    finally:
        client.close()
    counts = {
        s.name: sum(1 for r in rec.probe_results(s.name, ProbeSource.STAGE) if r.error is None)
        for s in specs
    }
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
    controls and transfer sets; their names on the worker. With several workers, every one
    trains them (each reads some responses) and all must come out with the same weights.

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
            ctx.progress.advance(f"train probe {name}")
        except WorkerError as e:
            if e.status >= 500:
                raise
            raise UserError(f"probes.train.{name}: the worker cannot train it: {e.message}") from e
        except WorkersDisagree as e:
            raise UserError(
                f"probes.train.{name}: {e}; their readouts could not be pooled. Run the workers "
                "on identical hardware and software, or use one worker."
            ) from e
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
