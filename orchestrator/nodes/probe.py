"""probe: truesight readouts of every usable response, from the local worker.

For each probe the protocol names, responses not yet read are sent to the worker in batches;
results (or why there is none, e.g. a text longer than the model's context) go to records.sqlite,
where the analysis summarises them per cell and verdicts can cite them by id.
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from agents.truesight import TruesightClient, WorkerError, text_sha256
from orchestrator.context import RunContext, worker_token, worker_url
from orchestrator.progress import finish_stage
from orchestrator.records import Item
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
    counts: dict[str, int] = {}
    client = TruesightClient(worker_url(), worker_token())
    try:
        for name in spec.run:
            done = {r.item_id for r in rec.probe_results(name)}
            todo = [i for i in items if i.id not in done]
            ctx.progress.start(f"probe {name}", len(items), len(items) - len(todo))
            for start in range(0, len(todo), spec.batch_size):
                if ctx.stop.is_set():
                    raise KeyboardInterrupt
                _run_batch(ctx, client, name, todo[start : start + spec.batch_size], responses)
                ctx.progress.advance(f"probe {name}", len(todo[start : start + spec.batch_size]))
            ctx.progress.stop(f"probe {name}")
            counts[name] = sum(1 for r in rec.probe_results(name) if r.error is None)
    finally:
        client.close()
    failed = sum(1 for r in rec.probe_results() if r.error)
    text = f"Probed {len(items)} responses: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    if failed:
        text += f"; {failed} readouts failed (see probe_results.error)"
    finish_stage(ctx.run, "probe", {**counts, "failed": failed}, text)
    return {"stage": "probe"}


def _context(ctx: RunContext, item: Item) -> str | None:
    if ctx.protocol.probes is None or ctx.protocol.probes.context == "none":
        return None
    return "\n\n".join(p for p in (item.system, item.user) if p) + "\n\n"


def _run_batch(ctx: RunContext, client: TruesightClient, name: str, batch: list[Item],
               responses: dict) -> None:  # fmt: skip
    spec = ctx.protocol.probes
    params = spec.params.get(name, {})
    texts = [responses[i.id].text for i in batch]
    contexts = [_context(ctx, i) for i in batch] if name == "surprisal" else None
    if contexts is not None and contexts[0] is None:
        contexts = None
    try:
        reply = client.run(name, texts, contexts, params)
    except WorkerError as e:
        if e.status >= 500 or len(batch) == 1:
            if e.status >= 500:
                raise
            item = batch[0]
            sha = text_sha256(texts[0], contexts[0] if contexts else None)
            ctx.run.records.add_probe_result(item.id, name, "?", params, sha, None, e.message)
            ctx.log("probe", "error", f"{name} on {item.id}: {e.message}")
            return
        for one in batch:  # one text in the batch is unusable: find it, keep the others
            _run_batch(ctx, client, name, [one], responses)
        return
    for k, (item, result) in enumerate(zip(batch, reply.results, strict=True)):
        sha = text_sha256(texts[k], contexts[k] if contexts else None)
        ctx.run.records.add_probe_result(item.id, name, reply.model, params, sha, result)
