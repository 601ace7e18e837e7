"""collect: call every subject model on its items, through the ledger.

Items whose call is already recorded are skipped, so re-running this node after a crash or an
interrupt only makes the calls that are missing. A subject with `batch: true` sends its calls as
one message batch; the batch id is kept in artifacts/batches/<subject>.json, so a resumed run
waits on the same batch instead of paying for it twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from langgraph.runtime import Runtime

from agents.batches import BatchCall, BatchRunner, BatchStatus, BatchStopped, Event
from agents.client import CallSpec
from orchestrator.context import RunContext
from orchestrator.progress import finish_stage
from orchestrator.protocol.schema import Subject
from orchestrator.records import Item
from orchestrator.state import RunState


def collect(state: RunState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    items = ctx.run.records.items()
    done = {i for i, r in ctx.run.records.responses().items() if r.error is None}
    todo = [i for i in items if i.id not in done]
    ctx.progress.start("collect", len(items), len(items) - len(todo))
    if todo:
        ctx.log("collect", "start", f"{len(todo)} of {len(items)} subject calls to make.")
        try:
            ctx.run_async(_collect(ctx, todo))
        except BatchStopped:
            raise KeyboardInterrupt from None
    ctx.progress.stop("collect")
    responses = ctx.run.records.responses()
    errors = Counter(r.error.split(":")[0] for r in responses.values() if r.error)
    ok = sum(1 for r in responses.values() if r.error is None)
    text = f"{ok} of {len(items)} subject calls answered."
    if errors:
        text += " Failed after retries: " + ", ".join(f"{k} ×{v}" for k, v in errors.items())
    finish_stage(ctx.run, "collect", {"responses": ok, "failed": len(items) - ok}, text)
    return {"responses": ok, "stage": "collect"}


def batched(s: Subject) -> bool:
    return s.batch and s.provider == "anthropic"


async def _collect(ctx: RunContext, todo: list[Item]) -> None:
    subjects = {s.id: s for s in ctx.protocol.subjects}
    by_batch: dict[str, list[Item]] = {}
    for item in todo:
        if batched(subjects[item.subject]):
            by_batch.setdefault(item.subject, []).append(item)
    online = [i for i in todo if not batched(subjects[i.subject])]
    clients = {sid: ctx.client(s) for sid, s in subjects.items() if not batched(s)}

    async def one(item: Item) -> None:
        s = subjects[item.subject]
        await clients[item.subject].call(
            CallSpec("collect", item.id, "subject"),
            model=s.model,
            params=s.params.model_dump(),
            system=item.system,
            messages=[{"role": "user", "content": item.user}],
        )
        ctx.progress.advance("collect")

    try:
        await asyncio.gather(
            *(one(i) for i in online),
            *(_batch(ctx, subjects[sid], items) for sid, items in by_batch.items()),
        )
    finally:
        for c in clients.values():
            await c.__aexit__(None, None, None)


async def _batch(ctx: RunContext, s: Subject, items: list[Item]) -> None:
    """One subject's calls as a message batch; its bar shows the batch's request counts."""
    bar = f"collect: batch {s.id}"

    def observe(event: Event, b: BatchStatus) -> None:
        ctx.progress.start(bar, b.total, b.finished)
        counts = ", ".join(f"{k} {v}" for k, v in b.counts.items() if v)
        if event == "submitted":
            ctx.log(
                "collect", "batch", f"Submitted message batch {b.id} for {s.id}: {b.total} calls."
            )
        elif event == "resumed":
            ctx.log("collect", "batch", f"Resumed message batch {b.id} for {s.id} ({counts}).")
        elif event == "ended":
            ctx.log("collect", "batch", f"Message batch {b.id} for {s.id} ended: {counts}.")
            ctx.progress.stop(bar)
        elif event == "foreign":  # found after a lost reply, but another's: none of our calls
            ctx.log("collect", "batch", f"Message batch {b.id} carried none of {s.id}'s calls.")
            ctx.progress.stop(bar)

    runner = BatchRunner(
        ctx.endpoint(s),
        ctx.run.records,
        ctx.sha,
        ctx.run.path("artifacts", "batches", f"{s.id}.json"),
        poll_s=ctx.settings.batch_poll_s,
        stop=ctx.stop.is_set,
        observe=observe,
    )
    calls = [
        BatchCall(
            CallSpec("collect", i.id, "subject"),
            model=s.model,
            params=s.params.model_dump(),
            messages=[{"role": "user", "content": i.user}],
            system=i.system,
        )
        for i in items
    ]
    results = await runner.run(calls)
    ctx.progress.advance("collect", len(results))
