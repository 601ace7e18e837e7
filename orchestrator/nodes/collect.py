"""collect: call every subject model on its items, through the ledger.

Items whose call is already recorded are skipped, so re-running this node after a crash or an
interrupt only makes the calls that are missing. A subject with `batch: true` sends its calls as
one message batch per pass (per turn, for a conversation the subject writes turns of); the batch
is recorded before it is created (agents/batches.py), so a resumed run waits on the same batch
instead of paying for it twice.

A call that failed for a reason that may pass (`agents.client.retryable`: overload, rate limits,
lost connections, a batch result that errored, expired or was canceled) is made again in up to
`retry_passes` follow-up passes — online, or a new batch of just those — each attempt in the
ledger. If some still fail, the stage does not finish: the run stops with `Unavailable`, saying
what is missing, and `research resume` retries them. A failed call is never passed on to the
evaluators as a response. Calls the API refused (a 400: the request itself is wrong) are not
retried in follow-up passes: they stay errored responses, unscored with their reason — unless it
refused every call of a subject (a wrong model name, an account that cannot pay), which stops the
run as the researcher's error. A collect that runs again (resume) makes every failed call once
more, refused ones included.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.runtime import Runtime

from agents.batches import BatchCall, BatchRunner, BatchStatus, BatchStopped, Event
from agents.client import CallResult, CallSpec, Unavailable, retryable
from orchestrator.context import RunContext
from orchestrator.errors import UserError
from orchestrator.nodes.conversation import EMPTY_TURN, item_responses, messages_for, written
from orchestrator.progress import finish_stage
from orchestrator.protocol.schema import Subject
from orchestrator.records import Item, Response, reply_text
from orchestrator.state import RunState

SHOWN = 20
"""Item ids named in a LOG.md line about failed calls; the rest are counted."""


def collect(state: RunState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    items = ctx.run.records.items()
    responses = item_responses(ctx.run.records, items)
    todo = [i for i in items if i.id not in responses or responses[i.id].error]
    ctx.progress.start("collect", len(items), len(items) - len(todo))
    passes = 1 + len(ctx.retry.waits())
    for n in range(passes):
        if not todo:
            break
        if n:
            _wait(ctx, ctx.retry.waits()[n - 1])
        text = _pass_text(n, passes, todo, responses, len(items))
        ctx.log("collect", "start" if n == 0 else "retry", text)
        try:
            ctx.run_async(_collect(ctx, todo))
        except BatchStopped:
            raise KeyboardInterrupt from None
        responses = item_responses(ctx.run.records, items)
        todo = [i for i in items if _to_call(responses.get(i.id))]
    ctx.progress.stop("collect")
    if todo:
        text = (
            f"{len(todo)} of {len(items)} subject calls still fail after {passes} passes "
            f"({_errors(todo, responses)}); nothing is passed on without them."
        )
        resume = f"`research resume {ctx.run.id}` makes them again."
        ctx.log("collect", "incomplete", f"{text} {resume}")
        raise Unavailable(text)
    _stop_if_all_refused(ctx, items, responses)
    ok = sum(1 for r in responses.values() if r.error is None)
    text = f"{ok} of {len(items)} subject calls answered."
    failed = [i for i in items if responses[i.id].error is not None]
    stopped = [i for i in failed if (responses[i.id].error or "").startswith(EMPTY_TURN)]
    refused = [i for i in failed if i not in stopped]
    if refused:
        text += f" Refused by the API (not retried): {_errors(refused, responses)}."
    if stopped:
        text += (
            f" The subject wrote an empty turn, so its conversation stopped there: "
            f"{_errors(stopped, responses)}."
        )
    finish_stage(ctx.run, "collect", {"responses": ok, "failed": len(items) - ok}, text)
    return {"responses": ok, "stage": "collect"}


def _stop_if_all_refused(
    ctx: RunContext, items: list[Item], responses: dict[str, Response]
) -> None:
    """A subject whose every call the API refused is misconfigured, not an outcome: stop."""
    for s in ctx.protocol.subjects:
        mine = [i for i in items if i.subject == s.id]
        if mine and all(responses[i.id].error is not None for i in mine):
            text = (
                f"the API refused every call to {s.model} ({_errors(mine, responses)}); check "
                f"the model name and the account, then `research resume {ctx.run.id}` makes "
                "them again"
            )
            ctx.log("collect", "incomplete", text[0].upper() + text[1:] + ".")
            raise UserError(text)


def _to_call(response: Response | None) -> bool:
    """Never called, or failed for a reason that may pass."""
    return response is None or (response.error is not None and retryable(response.error))


def _pass_text(
    n: int, passes: int, todo: list[Item], responses: dict[str, Response], total: int
) -> str:
    failed = [i for i in todo if i.id in responses]
    if n:
        return (
            f"Pass {n + 1} of {passes}: making {len(failed)} subject calls again that failed "
            f"({_errors(failed, responses)})."
        )
    text = f"{len(todo)} of {total} subject calls to make."
    if failed:
        text += f" {len(failed)} of them failed before ({_errors(failed, responses)}): made again."
    return text


def _errors(items: list[Item], responses: dict[str, Response]) -> str:
    """What the items' calls failed with, kind by kind, and which items they are:
    "HTTP 529 ×3, batch expired ×1: items a, b, c, d"."""
    kinds = Counter((responses[i.id].error or "").split(":")[0] for i in items)
    ids = [i.id for i in items]
    shown = ", ".join(ids[:SHOWN]) + (f" and {len(ids) - SHOWN} more" if len(ids) > SHOWN else "")
    return ", ".join(f"{k} ×{v}" for k, v in kinds.most_common()) + f": items {shown}"


def _wait(ctx: RunContext, seconds: float) -> None:
    """Wait before a follow-up pass, giving up at once on Ctrl-C."""
    until = time.monotonic() + seconds
    while (left := until - time.monotonic()) > 0:
        if ctx.stop.wait(min(left, 0.2)):
            raise KeyboardInterrupt


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
    tools = declared_tools(ctx)

    async def one(item: Item) -> None:
        s = subjects[item.subject]
        client = clients[item.subject]

        async def call(role: str, messages: list[dict[str, Any]]) -> CallResult:
            return await client.call(
                CallSpec("collect", item.id, role),
                model=s.model,
                params=s.params.model_dump(),
                system=item.system,
                messages=messages,
                tools=tools,
            )

        result = await _conversation(item, call)
        if _final(result):
            ctx.progress.advance("collect")

    try:
        await asyncio.gather(
            *(one(i) for i in online),
            *(_batch(ctx, subjects[sid], items) for sid, items in by_batch.items()),
        )
    finally:
        for c in clients.values():
            await c.__aexit__(None, None, None)


def _final(result: CallResult) -> bool:
    """The item's response is recorded for good: answered, or refused for a reason no later
    pass can change (a retryable failure is made again and counted then)."""
    return result.error is None or not retryable(result.error)


def declared_tools(ctx: RunContext) -> list[dict[str, Any]] | None:
    """The protocol's `tools` as the Messages API takes them; None for none."""
    return [t.model_dump() for t in ctx.protocol.tools] or None


async def _conversation(
    item: Item, call: Callable[[str, list[dict[str, Any]]], Awaitable[CallResult]]
) -> CallResult:
    """An item's calls in order: the k-th generated turn is the subject's reply (role
    `subject:turn-<k>`) to the conversation before it; the last call's reply (role `subject`)
    is the item's response. Each is a ledger call of its own, so a resumed run pays for none
    twice; a failed turn ends the chain for this pass (the item has no response yet)."""
    replies: list[list[dict[str, Any]]] = []
    for k in range(1, item.generated() + 1):
        result = await call(f"subject:turn-{k}", messages_for(item, replies))
        if result.error is not None or not written(reply_text(result.content)):
            return result
        replies.append(result.content)
    return await call("subject", messages_for(item, replies))


async def _batch(ctx: RunContext, s: Subject, items: list[Item]) -> None:
    """One subject's calls as message batches: one batch, or for a conversation with generated
    turns one batch per turn, in order (each turn's calls need the replies of the turn before).
    An item whose turn failed waits for the next pass; its later turns are not sent."""
    turns = max((i.generated() for i in items), default=0)
    replies: dict[str, list[list[dict[str, Any]]]] = {i.id: [] for i in items}
    live = items
    for k in range(1, turns + 2):
        role = "subject" if k > turns else f"subject:turn-{k}"
        results = await _batch_turn(ctx, s, live, replies, role, k if turns else None)
        answered = [(i, r) for i, r in zip(live, results, strict=True) if r.error is None]
        if role == "subject":
            ctx.progress.advance("collect", sum(1 for r in results if _final(r)))
            return
        go_on = [(i, r) for i, r in answered if written(reply_text(r.content))]
        for i, r in go_on:
            replies[i.id].append(r.content)
        live = [i for i, _ in go_on]
        if not live:
            return


async def _batch_turn(
    ctx: RunContext,
    s: Subject,
    items: list[Item],
    replies: dict[str, list[list[dict[str, Any]]]],
    role: str,
    turn: int | None,
) -> list[CallResult]:
    """One batch of a subject's calls for `role`; its bar shows the batch's request counts.
    A conversation's turns each keep their own state file (`<subject>.turn-<k>.json`)."""
    which = s.id if turn is None else f"{s.id}, turn {turn}"
    bar = f"collect: batch {which}"

    def observe(event: Event, b: BatchStatus) -> None:
        ctx.progress.start(bar, b.total, b.finished)
        counts = ", ".join(f"{k} {v}" for k, v in b.counts.items() if v)
        if event == "submitted":
            ctx.log(
                "collect", "batch", f"Submitted message batch {b.id} for {which}: {b.total} calls."
            )
        elif event == "resumed":
            ctx.log("collect", "batch", f"Resumed message batch {b.id} for {which} ({counts}).")
        elif event == "ended":
            ctx.log("collect", "batch", f"Message batch {b.id} for {which} ended: {counts}.")
            ctx.progress.stop(bar)
        elif event == "foreign":  # found after a lost reply, but another's: none of our calls
            ctx.log("collect", "batch", f"Message batch {b.id} carried none of {which}'s calls.")
            ctx.progress.stop(bar)

    name = s.id if role == "subject" else f"{s.id}.turn-{turn}"
    runner = BatchRunner(
        ctx.endpoint(s),
        ctx.run.records,
        ctx.sha,
        ctx.run.path("artifacts", "batches", f"{name}.json"),
        poll_s=ctx.settings.batch_poll_s,
        stop=ctx.stop.is_set,
        observe=observe,
    )
    calls = [
        BatchCall(
            CallSpec("collect", i.id, role),
            model=s.model,
            params=s.params.model_dump(),
            messages=messages_for(i, replies[i.id]),
            system=i.system,
            tools=declared_tools(ctx),
        )
        for i in items
    ]
    return await runner.run(calls)
