"""evaluate: split the responses into batches and fan out one evaluator per batch (`Send`).

`evaluate` plans the batches (seeded, so a re-run plans the same ones) and records them;
`fan_out` sends every unfinished batch to `evaluate_batch`; `evaluate_done` closes the stage once
all batches are in. Items with nothing to judge are recorded unscored with the reason.
"""

from __future__ import annotations

import math
import random
from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Send

from agents.client import LLMClient
from agents.evaluator import BatchJudge, Evaluator, FieldSpec, JudgeItem
from orchestrator.context import RunContext, endpoint
from orchestrator.progress import finish_stage
from orchestrator.records import Verdict
from orchestrator.state import BatchState, RunState

UNJUDGEABLE = {"errored", "empty"}


def evaluate(state: RunState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    ev = ctx.protocol.evaluation
    ids = [i.id for i in ctx.run.records.items()]
    random.Random(ctx.protocol.design.seed).shuffle(ids)
    size = ev.batch_size
    if ctx.run.pilot:  # keep the fan-out visible at pilot size
        size = min(size, max(1, math.ceil(len(ids) / ev.evaluators)))
    batches = [
        (f"batch-{b + 1:02d}", f"evaluator-{b % ev.evaluators + 1}", ids[b * size : (b + 1) * size])
        for b in range(math.ceil(len(ids) / size))
    ]
    if not ctx.run.records.batches():
        ctx.run.records.set_batches(batches)
        ctx.log(
            "evaluate",
            "plan",
            f"{len(ids)} items in {len(batches)} batches of up to {size}, "
            f"{min(len(batches), ev.evaluators)} evaluators ({ev.judge.model}).",
        )
    todo = sum(len(items) for _, _, items, status in ctx.run.records.batches() if status != "done")
    ctx.progress.start("evaluate", len(ids), len(ids) - todo)
    return {"stage": "evaluate"}


def fan_out(state: RunState, runtime: Runtime[RunContext]) -> list[Send] | Literal["evaluate_done"]:
    pending = [b for b, _, _, status in runtime.context.run.records.batches() if status != "done"]
    return [Send("evaluate_batch", {"batch_id": b}) for b in pending] or "evaluate_done"


def make_evaluator(ctx: RunContext, client: LLMClient, name: str) -> Evaluator:
    ev, p = ctx.protocol.evaluation, ctx.protocol
    fields = [FieldSpec(n, f.type, tuple(f.values), f.description) for n, f in ev.verdict.items()]
    return BatchJudge(
        client,
        name=name,
        model=ev.judge.model,
        params=ev.judge.params.model_dump(),
        title=p.title,
        question=p.question,
        rubric=ev.rubric,
        fields=fields,
        max_attempts=ev.max_attempts,
    )


def evaluate_batch(state: BatchState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    rec = ctx.run.records
    batch_id = state["batch_id"]
    _, evaluator, item_ids, status = next(b for b in rec.batches() if b[0] == batch_id)
    if status == "done":
        return {"batches_done": [batch_id]}
    items = {i.id: i for i in rec.items()}
    responses, screen = rec.responses(), rec.screen()
    skipped = [
        Verdict(i, evaluator, batch_id, "unscored", None,
                f"not judged: response {'/'.join(sorted(set(screen[i]) & UNJUDGEABLE))}")
        for i in item_ids
        if set(screen.get(i, ["errored"])) & UNJUDGEABLE
    ]  # fmt: skip
    skip = {v.item_id for v in skipped}
    judge_items = [
        JudgeItem(i, items[i].blind_user, responses[i].text) for i in item_ids if i not in skip
    ]

    async def run() -> list[Verdict]:
        async with LLMClient(endpoint(ctx.protocol.evaluation.judge), rec, ctx.sha) as client:
            judged = await make_evaluator(ctx, client, evaluator).judge(batch_id, judge_items)
        return [
            Verdict(v.item_id, evaluator, batch_id, "scored" if v.fields else "unscored",
                    v.fields, v.reason)
            for v in judged
        ]  # fmt: skip

    verdicts = skipped + (ctx.run_async(run()) if judge_items else [])
    rec.finish_batch(batch_id, verdicts)
    unscored = sum(1 for v in verdicts if v.status == "unscored")
    ctx.log(
        "evaluate",
        "batch_done",
        f"{batch_id} ({evaluator}): {len(verdicts) - unscored} scored, {unscored} unscored.",
        actor=evaluator,
    )
    ctx.progress.advance("evaluate", len(item_ids))
    return {"batches_done": [batch_id]}


def evaluate_done(state: RunState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    ctx.progress.stop("evaluate")
    verdicts = ctx.run.records.verdicts()
    unscored = [v for v in verdicts if v.status == "unscored"]
    if unscored:
        text = f"{len(unscored)} of {len(verdicts)} items unscored (see verdicts.reason)"
        ids = [v.item_id for v in unscored]
        if ctx.run.records.add_flag("evaluate", "unscored", "evaluate", ids, text):
            ctx.log("evaluate", "flag", text)
    counts = {"scored": len(verdicts) - len(unscored), "unscored": len(unscored)}
    batches = len(ctx.run.records.batches())
    text = f"{counts['scored']} verdicts scored, {counts['unscored']} unscored, {batches} batches."
    finish_stage(ctx.run, "evaluate", counts, text)
    return {"stage": "evaluate"}
