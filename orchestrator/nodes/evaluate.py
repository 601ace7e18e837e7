"""evaluate: plan each evaluator's work and fan out one evaluator agent per batch (`Send`).

`evaluate` plans the batches (seeded, so a re-run plans the same ones): each batch's primary
items, plus a share of items that a second evaluator also judges (`evaluation.overlap`, for
agreement) and one item the same evaluator sees twice (`evaluation.duplicates`, for
self-consistency). `fan_out` sends every unfinished batch to `evaluate_batch`, which runs an
`EvaluatorAgent` (agents/evaluator/); its verdicts, flags and comprehension answers are
stored as they happen, so a restarted run picks each evaluator up from its records and notes.
With a remote judge, the probe stage's `readouts` go out beside the batches (nodes/probe.py).
`evaluate_done` closes the stage once all batches, and those readouts, are in.

A judge API that keeps failing (after the SDK's retries and the agent loop's) stops the
evaluator, and the items it had not judged are recorded *pending*, not unscored: the batch stays
open, and the evaluate checkpoint sends it back here (once by itself, then on each
`research resume`) until every item has a verdict; `--yes` never approves past pending items.
"""

from __future__ import annotations

import math
import random
from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Send

from agents.evaluator import (
    FLAG_KINDS,
    WorkItem,
)
from orchestrator.analysis import compute_agreement, headline, save_agreement
from orchestrator.context import RunContext
from orchestrator.measured import raise_flags
from orchestrator.nodes.conversation import generated_replies, judged_text
from orchestrator.nodes.judging import judge, record_verdicts
from orchestrator.pending import pending_text
from orchestrator.progress import finish_stage
from orchestrator.protocol.schema import Protocol
from orchestrator.protocol.stimuli import shown_task_fields
from orchestrator.records import (
    Assigned,
    BatchStatus,
    Item,
    StageStatus,
    Verdict,
    VerdictRole,
    VerdictStatus,
)
from orchestrator.state import BatchState, RunState

UNJUDGEABLE = {"errored", "empty"}


def plan(protocol: Protocol, ids: list[str], pilot: bool) -> tuple[list, dict[str, list]]:
    """(batches as (id, evaluator, primary item ids), extra entries per batch id)."""
    ev = protocol.evaluation
    ids = list(ids)
    rng = random.Random(protocol.design.seed)
    rng.shuffle(ids)
    size = ev.batch_size
    if pilot:  # keep the fan-out visible at pilot size
        size = min(size, max(1, math.ceil(len(ids) / ev.evaluators)))
    batches = [
        (f"batch-{b + 1:02d}", f"evaluator-{b % ev.evaluators + 1}", ids[b * size : (b + 1) * size])
        for b in range(math.ceil(len(ids) / size))
    ]
    extra: dict[str, list[Assigned]] = {b: [] for b, _, _ in batches}
    n_overlap = round(ev.overlap * len(ids))
    for b, _, items in batches:
        if ev.duplicates and len(items) >= 2:
            extra[b].append(Assigned(rng.choice(items), 1, VerdictRole.DUPLICATE))
    if n_overlap:
        owner = {i: n for n, (_, _, items) in enumerate(batches) for i in items}
        for item in sorted(ids, key=lambda i: rng.random())[:n_overlap]:
            home = owner[item]
            for step in range(1, len(batches)):
                other = (home + step) % len(batches)
                if batches[other][1] != batches[home][1]:  # another evaluator
                    extra[batches[other][0]].append(Assigned(item, 0, VerdictRole.OVERLAP))
                    break
    return batches, extra


def evaluate(state: RunState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    ev = ctx.protocol.evaluation
    ids = [i.id for i in ctx.run.records.items()]
    if not ctx.run.records.batches():
        batches, extra = plan(ctx.protocol, ids, ctx.run.pilot)
        ctx.run.records.set_batches(batches, extra)
        overlap = sum(1 for e in extra.values() for a in e if a.role == VerdictRole.OVERLAP)
        dups = sum(1 for e in extra.values() for a in e if a.role == VerdictRole.DUPLICATE)
        ctx.log(
            "evaluate",
            "plan",
            f"{len(ids)} items in {len(batches)} batches of up to {len(batches[0][2])}, "
            f"{min(len(batches), ev.evaluators)} evaluators ({ev.judge.model}, {ev.agent} "
            f"agents); {overlap} items also judged by a second evaluator, {dups} planted "
            "duplicates.",
        )
    judged = {v.item_id for v in ctx.run.records.verdicts() if v.status != VerdictStatus.PENDING}
    ctx.progress.start("evaluate", len(ids), len(judged & set(ids)))
    return {"stage": "evaluate"}


def fan_out(state: RunState, runtime: Runtime[RunContext]) -> list[Send] | Literal["evaluate_done"]:
    """One `evaluate_batch` per unfinished batch, and the probe stage's `readouts` beside them
    while that stage is unfinished (a remote judge: see nodes/probe.py); all run at once, and
    `evaluate_done` waits for every one."""
    rec = runtime.context.run.records
    sends = [
        Send("evaluate_batch", {"batch_id": b.id})
        for b in rec.batches()
        if b.status != BatchStatus.DONE
    ]
    probe = rec.stages().get("probe")
    if probe is None or probe.status != StageStatus.DONE:
        sends.insert(0, Send("readouts", {}))
    return sends or "evaluate_done"


def evaluate_batch(state: BatchState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    rec = ctx.run.records
    batch = rec.batch(state["batch_id"])
    if batch.status == BatchStatus.DONE:
        return {"batches_done": [batch.id]}
    rec.clear_pending(batch.id)  # judged again now
    assignment = rec.assignment(batch.id)
    screen = rec.screen()
    judgeable = [a for a in assignment if _judgeable(screen, a)]
    record_verdicts(
        ctx,
        [
            _not_judged(a, batch.evaluator, batch.id, screen[a.item_id])
            for a in assignment
            if a.role == VerdictRole.PRIMARY and not _judgeable(screen, a)
        ],
    )
    items = {i.id: i for i in rec.items()}
    responses = rec.responses()
    generated = generated_replies(rec, list(items.values()))
    shown = shown_task_fields(ctx.protocol)
    work = [
        WorkItem(
            a.item_id,
            a.copy,
            a.role,
            judged_prompt(items[a.item_id], generated.get(a.item_id, [])),
            responses[a.item_id].text,
            shown[items[a.item_id].task_id],
        )
        for a in judgeable
    ]
    outage = ctx.run_async(judge(ctx, batch.id, batch.evaluator, work)) if work else None
    mine = [v for v in rec.verdicts(None) if v.batch_id == batch.id]
    judged = {(v.item_id, v.copy) for v in mine}
    waiting = [
        _pending(w, batch.evaluator, batch.id, outage)
        for w in work
        if outage is not None and (w.item_id, w.copy) not in judged
    ]
    rec.finish_batch(batch.id, waiting, BatchStatus.PENDING if waiting else BatchStatus.DONE)
    unscored = sum(1 for v in mine if v.status == VerdictStatus.UNSCORED)
    text = f"{batch.id} ({batch.evaluator}): {len(mine) - unscored} scored, {unscored} unscored"
    if waiting:
        text += f", {len(waiting)} pending ({outage})"
    ctx.log(
        "evaluate", "batch_pending" if waiting else "batch_done", text + ".", actor=batch.evaluator
    )
    return {"batches_done": [batch.id]}


def _pending(w: WorkItem, evaluator: str, batch_id: str, outage: str | None) -> Verdict:
    """An item its evaluator could not get to: the judge API kept failing."""
    reason = f"pending: the judge API kept failing ({outage})"
    return Verdict(
        w.item_id, evaluator, batch_id, VerdictStatus.PENDING, None, reason, w.copy, w.role
    )


def judged_prompt(item: Item, generated: list[str]) -> str:
    """What evaluators see as the input the subject answered: `blind_user` for the two-key
    form; for a conversation, its blinded turns as text ("[user] ... [assistant] ... [user]
    ..."), each generated turn as the subject wrote it. A generated turn is the subject's reply
    to the conversation before it (the subject's view: blinded or not, as the templates make
    it), so it is shown marked as generated, verbatim."""
    if not item.blind_turns:
        return item.blind_user
    return judged_text(item.blind_turns, generated)


def _judgeable(screen: dict[str, list[str]], a: Assigned) -> bool:
    return not set(screen.get(a.item_id, ["errored"])) & UNJUDGEABLE


def _not_judged(a: Assigned, evaluator: str, batch_id: str, flags: list[str]) -> Verdict:
    why = "/".join(sorted(set(flags) & UNJUDGEABLE))
    reason = f"not judged: response {why}"
    return Verdict(a.item_id, evaluator, batch_id, VerdictStatus.UNSCORED, None, reason)


def evaluate_done(state: RunState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    ctx.progress.stop("evaluate")
    verdicts = ctx.run.records.verdicts()
    unscored = [v for v in verdicts if v.status == VerdictStatus.UNSCORED]
    # unscored items (blocking above evaluation.max_unscored) and constraint violations
    for finding in raise_flags(ctx.protocol, ctx.run.records):
        ctx.log("evaluate", "flag", f"{finding.kind}: {finding.text}")
    scored = sum(1 for v in verdicts if v.status == VerdictStatus.SCORED)
    counts = {"scored": scored, "unscored": len(unscored)}
    batches = len(ctx.run.records.batches())
    text = f"{scored} verdicts scored, {len(unscored)} unscored, {batches} batches."
    # the checkpoint sends the stage back for them; --yes never approves past them
    if (waiting := pending_text(ctx.run.records)) is not None:
        counts["pending"] = len({v.item_id for v in ctx.run.records.pending()})
        text += f" {waiting}."
    data = compute_agreement(ctx.protocol, ctx.run.records)
    save_agreement(ctx.run.path("artifacts", "agreement.json"), data)
    primary = ctx.protocol.analysis.primary
    text += f" Agreement on {primary}: {headline(data, primary)}."
    flags = [f for f in ctx.run.records.flags() if f.stage == "evaluate" and f.kind in FLAG_KINDS]
    if flags:
        raisers = {f.raised_by for f in flags}
        text += f" {len(flags)} flags from {len(raisers)} evaluators."
    finish_stage(ctx.run, "evaluate", counts, text)
    return {"stage": "evaluate"}
