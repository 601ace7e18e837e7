"""evaluate: plan each evaluator's work and fan out one evaluator agent per batch (`Send`).

`evaluate` plans the batches (seeded, so a re-run plans the same ones): each batch's primary
items, plus a share of items that a second evaluator also judges (`evaluation.overlap`, for
agreement) and one item the same evaluator sees twice (`evaluation.duplicates`, for
self-consistency). `fan_out` sends every unfinished batch to `evaluate_batch`, which runs an
`EvaluatorAgent` (agents/evaluator/); its verdicts, flags and comprehension answers are
stored as they happen, so a restarted run picks each evaluator up from its records and notes.
`evaluate_done` closes the stage once all batches are in.

A judge API that keeps failing (after the SDK's retries and the agent loop's) stops the
evaluator, and the items it had not judged are recorded *pending*, not unscored: the batch stays
open, and the evaluate checkpoint sends it back here (once by itself, then on each
`research resume`) until every item has a verdict; `--yes` never approves past pending items.
"""

from __future__ import annotations

import math
import random
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Send

from agents.client import LLMClient, Unavailable
from agents.evaluator import (
    FLAG_KINDS,
    AgentVerdict,
    Brief,
    EvaluatorAgent,
    FieldSpec,
    Question,
    Replaced,
    WorkItem,
)
from agents.truesight import TruesightTool
from memory import append_note, read_notes
from orchestrator.analysis import compute_agreement, headline, save_agreement
from orchestrator.context import RunContext
from orchestrator.pending import pending_text
from orchestrator.progress import finish_stage
from orchestrator.protocol.schema import Protocol, VerdictField
from orchestrator.protocol.stimuli import shown_task_fields
from orchestrator.records import (
    Assigned,
    BatchStatus,
    Item,
    Records,
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
    batches = ctx.run.records.batches()
    todo = sum(len(b.items) for b in batches if b.status != BatchStatus.DONE)
    ctx.progress.start("evaluate", len(ids), len(ids) - todo)
    return {"stage": "evaluate"}


def fan_out(state: RunState, runtime: Runtime[RunContext]) -> list[Send] | Literal["evaluate_done"]:
    pending = [b for b in runtime.context.run.records.batches() if b.status != BatchStatus.DONE]
    return [Send("evaluate_batch", {"batch_id": b.id}) for b in pending] or "evaluate_done"


def brief(protocol: Protocol, truesight: bool) -> Brief:
    ev = protocol.evaluation
    return Brief(
        title=protocol.title if ev.show_question else None,
        question=protocol.question if ev.show_question else None,
        rubric=ev.rubric,
        fields=[_field_spec(n, f) for n, f in ev.verdict.items()],
        questions=[
            Question(q.id, q.question.strip(), tuple(q.choices), q.answer, q.explanation.strip())
            for q in ev.comprehension
        ],
        pass_mark=ev.pass_mark,
        chunk_size=ev.chunk_size,
        truesight=truesight,
        task_fields=tuple(ev.show_task_fields),
    )


def _field_spec(name: str, f: VerdictField) -> FieldSpec:
    values = f.levels if f.type == "ordinal" else f.values
    return FieldSpec(name, f.type, tuple(values), f.description, f.max_length, f.min, f.max)


class RecordsSink:
    """Where evaluator agents' decisions go: records.sqlite, LOG.md and memory/ notes."""

    def __init__(self, ctx: RunContext, batch_id: str):
        self.ctx, self.batch_id = ctx, batch_id
        self.rec: Records = ctx.run.records

    def verdicts(self, evaluator: str, verdicts: list[AgentVerdict]) -> None:
        self.rec.add_verdicts([_verdict(v, evaluator, self.batch_id) for v in verdicts])

    def flag(self, evaluator: str, kind: str, item_ids: list[str], text: str) -> bool:
        new = self.rec.add_flag("evaluate", kind, evaluator, item_ids, text)
        if new:
            examples = f" (items: {', '.join(item_ids[:5])})" if item_ids else ""
            text = f"{kind} from {evaluator}: {text}{examples}"
            self.ctx.log("evaluate", "flag", text, actor=evaluator)
        return new

    def comprehension(
        self, evaluator: str, answers: dict[str, str], wrong: list[str], passed: bool
    ) -> int:
        return self.rec.add_comprehension(evaluator, answers, wrong, passed)

    def session(self, evaluator: str, reason: str) -> int:
        return self.rec.start_session(evaluator, reason)

    def unknown_probe_ids(self, ids: list[int]) -> list[int]:
        known = self.rec.probe_result_ids()
        return [i for i in ids if i not in known]

    def notes(self, evaluator: str) -> str:
        return read_notes(self.ctx.run.root, evaluator)

    def write_notes(self, evaluator: str, text: str) -> None:
        append_note(self.ctx.run.root, evaluator, text)

    def log(self, evaluator: str, kind: str, text: str) -> None:
        self.ctx.log("evaluate", kind, text, actor=evaluator)


def _verdict(v: AgentVerdict, evaluator: str, batch_id: str) -> Verdict:
    return Verdict(
        item_id=v.item_id,
        evaluator=evaluator,
        batch_id=batch_id,
        status=VerdictStatus.SCORED if v.fields is not None else VerdictStatus.UNSCORED,
        fields=v.fields,
        reason=v.reason,
        copy=v.copy,
        role=v.role,
        cites=v.cites,
    )


def _failed_twice(rec: Records, name: str) -> bool:
    rows = rec.comprehension(name)
    return len(rows) >= 2 and not any(r.passed for r in rows)


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
    rec.add_verdicts(
        [
            _not_judged(a, batch.evaluator, batch.id, screen[a.item_id])
            for a in assignment
            if a.role == VerdictRole.PRIMARY and not _judgeable(screen, a)
        ]
    )
    items = {i.id: i for i in rec.items()}
    responses = rec.responses()
    generated = _generated(rec, list(items.values()))
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
    outage = ctx.run_async(_judge(ctx, batch.id, batch.evaluator, work)) if work else None
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
    primary = [a for a in assignment if a.role == VerdictRole.PRIMARY]
    left = sum(1 for v in waiting if v.role == VerdictRole.PRIMARY)
    ctx.progress.advance("evaluate", len(primary) - left)
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
    replies = iter(generated)
    parts = []
    for turn in item.blind_turns:
        if turn.text is None:
            parts.append(f"[assistant, generated by the subject]\n{next(replies, '')}")
        else:
            parts.append(f"[{turn.role}]\n{turn.text}")
    return "\n\n".join(parts)


def _generated(rec: Records, items: list[Item]) -> dict[str, list[str]]:
    """Per item, the turns the subject generated before its judged reply, in order."""
    out: dict[str, list[str]] = {}
    for k in range(1, max((i.generated() for i in items), default=0) + 1):
        for item_id, r in rec.responses(f"subject:turn-{k}").items():
            out.setdefault(item_id, []).append(r.text)
    return out


def _judgeable(screen: dict[str, list[str]], a: Assigned) -> bool:
    return not set(screen.get(a.item_id, ["errored"])) & UNJUDGEABLE


def _not_judged(a: Assigned, evaluator: str, batch_id: str, flags: list[str]) -> Verdict:
    why = "/".join(sorted(set(flags) & UNJUDGEABLE))
    reason = f"not judged: response {why}"
    return Verdict(a.item_id, evaluator, batch_id, VerdictStatus.UNSCORED, None, reason)


async def _judge(
    ctx: RunContext, batch_id: str, evaluator: str, work: list[WorkItem]
) -> str | None:
    """Run the batch's evaluator; if it is replaced (failed its comprehension check twice), a
    fresh one takes its items; if that one fails too, the items are recorded as unscored.
    Returns what kept failing when the judge API stopped the evaluator (its items left are
    pending), else None."""
    rec = ctx.run.records
    names = [evaluator, f"{evaluator}-replacement"]
    if _failed_twice(rec, evaluator):
        names = names[1:]
    async with ctx.client(ctx.protocol.evaluation.judge) as client:
        for name in names:
            tool = _truesight_tool(ctx)
            try:
                await _agent(ctx, client, name, batch_id, work, tool).run()
                return None
            except Unavailable as e:
                text = f"stopped: the judge API kept failing ({e}); its items left are pending"
                ctx.log("evaluate", "unavailable", text, actor=name)
                return str(e)
            except Replaced as e:
                text = f"{e}; a fresh evaluator takes its items"
                ctx.log("evaluate", "replaced", text, actor=name)
            finally:
                if tool is not None:
                    tool.client.close()
    reason = "unscored: no evaluator passed the comprehension check"
    unscored = VerdictStatus.UNSCORED
    rec.add_verdicts(
        [
            Verdict(w.item_id, names[-1], batch_id, unscored, None, reason, w.copy, w.role)
            for w in work
        ]
    )
    return None


def _truesight_tool(ctx: RunContext) -> TruesightTool | None:
    """The truesight tool for a tool-using evaluator, when the protocol has probes."""
    if ctx.protocol.probes is None or ctx.protocol.evaluation.agent != "tools":
        return None
    return TruesightTool(ctx.truesight(), ctx.run.records, {}, params=_probe_params(ctx))


def _agent(
    ctx: RunContext,
    client: LLMClient,
    name: str,
    batch_id: str,
    work: list[WorkItem],
    tool: TruesightTool | None,
) -> EvaluatorAgent:
    """The evaluator `name` on this batch, picked up where its records leave it.

    It is a restart only if this evaluator already worked on this very batch (a call in the
    ledger): an evaluator's next batch, when there are more batches than evaluators, starts
    fresh, though the evaluator has had conversations before.
    """
    rec = ctx.run.records
    ev = ctx.protocol.evaluation
    already = {
        (v.item_id, v.copy): _agent_verdict(v)
        for v in rec.verdicts(None)
        if v.evaluator == name and v.batch_id == batch_id and v.status != VerdictStatus.PENDING
    }
    return EvaluatorAgent(
        client,
        RecordsSink(ctx, batch_id),
        name=name,
        batch_id=batch_id,
        brief=brief(ctx.protocol, tool is not None),
        work=work,
        model=ev.judge.model,
        params=ev.judge.params.model_dump(),
        seed=ctx.protocol.design.seed,
        max_attempts=ev.max_attempts,
        context_budget=ev.context_budget,
        max_turns=ev.max_turns,
        mode=ev.agent,
        truesight=tool,
        already=already,
        passed=any(r.passed for r in rec.comprehension(name)),
        restarted=rec.made_calls("evaluate", batch_id, name),
        retry=ctx.retry,
    )


def _agent_verdict(v: Verdict) -> AgentVerdict:
    return AgentVerdict(v.item_id, v.copy, v.role, v.fields, v.reason, v.cites)


def _probe_params(ctx: RunContext) -> dict[str, dict[str, Any]]:
    spec = ctx.protocol.probes
    return {k: dict(v) for k, v in spec.params.items()} if spec else {}


def evaluate_done(state: RunState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    ctx.progress.stop("evaluate")
    verdicts = ctx.run.records.verdicts()
    unscored = [v for v in verdicts if v.status == VerdictStatus.UNSCORED]
    if unscored:
        text = f"{len(unscored)} of {len(verdicts)} items unscored (see verdicts.reason)"
        ids = [v.item_id for v in unscored]
        if ctx.run.records.add_flag("evaluate", "unscored", "evaluate", ids, text):
            ctx.log("evaluate", "flag", text)
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
