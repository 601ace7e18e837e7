"""collect: call every subject model on its items, through the ledger.

Items whose call is already recorded are skipped, so re-running this node after a crash or an
interrupt only makes the calls that are missing.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from langgraph.runtime import Runtime

from agents.client import CallSpec, LLMClient
from orchestrator.context import RunContext, endpoint
from orchestrator.progress import finish_stage
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
        ctx.run_async(_collect(ctx, todo))
    ctx.progress.stop("collect")
    responses = ctx.run.records.responses()
    errors = Counter(r.error.split(":")[0] for r in responses.values() if r.error)
    ok = sum(1 for r in responses.values() if r.error is None)
    text = f"{ok} of {len(items)} subject calls answered."
    if errors:
        text += " Failed after retries: " + ", ".join(f"{k} ×{v}" for k, v in errors.items())
    finish_stage(ctx.run, "collect", {"responses": ok, "failed": len(items) - ok}, text)
    return {"responses": ok, "stage": "collect"}


async def _collect(ctx: RunContext, todo: list[Item]) -> None:
    subjects = {s.id: s for s in ctx.protocol.subjects}
    clients = {sid: LLMClient(endpoint(s), ctx.run.records, ctx.sha) for sid, s in subjects.items()}

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
        await asyncio.gather(*(one(i) for i in todo))
    finally:
        for c in clients.values():
            await c.__aexit__(None, None, None)
