"""evaluate: plan each evaluator's work and fan out one evaluator agent per batch (`Send`).

`evaluate` plans the batches (seeded, so a re-run plans the same ones): each batch's primary
items, plus a share of items that a second evaluator also judges (`evaluation.overlap`, for
agreement) and one item the same evaluator sees twice (`evaluation.duplicates`, for
self-consistency). `fan_out` sends every unfinished batch to `evaluate_batch`, which runs an
`EvaluatorAgent` (agents/evaluator/); its verdicts, flags and comprehension answers are
stored as they happen, so a restarted run picks each evaluator up from its records and notes.
`evaluate_done` closes the stage once all batches are in.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Send

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
from memory import append_note, read_notes, write_atomic
from orchestrator.agreement import agreement, headline
from orchestrator.context import RunContext
from orchestrator.progress import finish_stage
from orchestrator.protocol.schema import Protocol
from orchestrator.records import Assigned, Records, Verdict
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
            extra[b].append(Assigned(rng.choice(items), 1, "duplicate"))
    if n_overlap:
        owner = {i: n for n, (_, _, items) in enumerate(batches) for i in items}
        for item in sorted(ids, key=lambda i: rng.random())[:n_overlap]:
            home = owner[item]
            for step in range(1, len(batches)):
                other = (home + step) % len(batches)
                if batches[other][1] != batches[home][1]:  # another evaluator
                    extra[batches[other][0]].append(Assigned(item, 0, "overlap"))
                    break
    return batches, extra


def evaluate(state: RunState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    ev = ctx.protocol.evaluation
    ids = [i.id for i in ctx.run.records.items()]
    if not ctx.run.records.batches():
        batches, extra = plan(ctx.protocol, ids, ctx.run.pilot)
        ctx.run.records.set_batches(batches, extra)
        overlap = sum(1 for e in extra.values() for a in e if a.role == "overlap")
        dups = sum(1 for e in extra.values() for a in e if a.role == "duplicate")
        ctx.log(
            "evaluate",
            "plan",
            f"{len(ids)} items in {len(batches)} batches of up to {len(batches[0][2])}, "
            f"{min(len(batches), ev.evaluators)} evaluators ({ev.judge.model}, {ev.agent} "
            f"agents); {overlap} items also judged by a second evaluator, {dups} planted "
            "duplicates.",
        )
    todo = sum(len(items) for _, _, items, status in ctx.run.records.batches() if status != "done")
    ctx.progress.start("evaluate", len(ids), len(ids) - todo)
    return {"stage": "evaluate"}


def fan_out(state: RunState, runtime: Runtime[RunContext]) -> list[Send] | Literal["evaluate_done"]:
    pending = [b for b, _, _, status in runtime.context.run.records.batches() if status != "done"]
    return [Send("evaluate_batch", {"batch_id": b}) for b in pending] or "evaluate_done"


def brief(protocol: Protocol, truesight: bool) -> Brief:
    ev = protocol.evaluation
    return Brief(
        title=protocol.title,
        question=protocol.question,
        rubric=ev.rubric,
        fields=[
            FieldSpec(n, f.type, tuple(f.values), f.description, f.max_length)
            for n, f in ev.verdict.items()
        ],
        questions=[
            Question(q.id, q.question.strip(), tuple(q.choices), q.answer, q.explanation.strip())
            for q in ev.comprehension
        ],
        pass_mark=ev.pass_mark,
        chunk_size=ev.chunk_size,
        truesight=truesight,
    )


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
            self.ctx.log("evaluate", "flag", f"{kind} from {evaluator}: {text}{examples}",
                         actor=evaluator)  # fmt: skip
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
    status = "scored" if v.fields is not None else "unscored"
    return Verdict(v.item_id, evaluator, batch_id, status, v.fields, v.reason, v.copy, v.role,
                   v.cites)  # fmt: skip


def _failed_twice(rec: Records, name: str) -> bool:
    rows = rec.comprehension(name)
    return len(rows) >= 2 and not any(r.passed for r in rows)


def evaluate_batch(state: BatchState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    rec = ctx.run.records
    batch_id = state["batch_id"]
    _, evaluator, _, status = next(b for b in rec.batches() if b[0] == batch_id)
    if status == "done":
        return {"batches_done": [batch_id]}
    items = {i.id: i for i in rec.items()}
    responses, screen = rec.responses(), rec.screen()
    assignment = rec.assignment(batch_id)

    def judgeable(a: Assigned) -> bool:
        return not set(screen.get(a.item_id, ["errored"])) & UNJUDGEABLE

    skipped = [
        Verdict(a.item_id, evaluator, batch_id, "unscored", None,
                f"not judged: response {'/'.join(sorted(set(screen[a.item_id]) & UNJUDGEABLE))}")
        for a in assignment
        if a.role == "primary" and not judgeable(a)
    ]  # fmt: skip
    rec.add_verdicts(skipped)
    work = [
        WorkItem(a.item_id, a.copy, a.role, items[a.item_id].blind_user,
                 responses[a.item_id].text)
        for a in assignment
        if judgeable(a)
    ]  # fmt: skip
    ev = ctx.protocol.evaluation
    probes = ctx.protocol.probes is not None

    async def run() -> None:
        sink = RecordsSink(ctx, batch_id)
        names = [evaluator, f"{evaluator}-replacement"]
        if _failed_twice(rec, evaluator):
            names = names[1:]
        async with ctx.client(ev.judge) as client:
            for name in names:
                mine = {(v.item_id, v.copy): _agent_verdict(v)
                        for v in rec.verdicts(None) if v.evaluator == name}  # fmt: skip
                tool = None
                if probes and ev.agent == "tools":
                    client_ts = ctx.truesight()
                    tool = TruesightTool(client_ts, rec, {}, params=_probe_params(ctx))
                agent = EvaluatorAgent(
                    client, sink, name=name, batch_id=batch_id, brief=brief(ctx.protocol, tool
                    is not None), work=work, model=ev.judge.model,
                    params=ev.judge.params.model_dump(), seed=ctx.protocol.design.seed,
                    max_attempts=ev.max_attempts, context_budget=ev.context_budget,
                    max_turns=ev.max_turns, mode=ev.agent, truesight=tool, already=mine,
                    passed=any(r.passed for r in rec.comprehension(name)),
                    restarted=bool(rec.sessions(name)),
                )  # fmt: skip
                try:
                    await agent.run()
                    return
                except Replaced as e:
                    ctx.log("evaluate", "replaced", f"{e}; a fresh evaluator takes its items",
                            actor=name)  # fmt: skip
                finally:
                    if tool is not None:
                        tool.client.close()
        reason = "unscored: no evaluator passed the comprehension check"
        rec.add_verdicts([
            Verdict(w.item_id, names[-1], batch_id, "unscored", None, reason, w.copy, w.role)
            for w in work
        ])  # fmt: skip

    if work:
        ctx.run_async(run())
    rec.finish_batch(batch_id, [])
    mine = [v for v in rec.verdicts(None) if v.batch_id == batch_id]
    unscored = sum(1 for v in mine if v.status == "unscored")
    ctx.log(
        "evaluate",
        "batch_done",
        f"{batch_id} ({evaluator}): {len(mine) - unscored} scored, {unscored} unscored.",
        actor=evaluator,
    )
    ctx.progress.advance("evaluate", len([a for a in assignment if a.role == "primary"]))
    return {"batches_done": [batch_id]}


def _agent_verdict(v: Verdict) -> AgentVerdict:
    return AgentVerdict(v.item_id, v.copy, v.role, v.fields, v.reason, v.cites)


def _probe_params(ctx: RunContext) -> dict[str, dict[str, Any]]:
    spec = ctx.protocol.probes
    return {k: dict(v) for k, v in spec.params.items()} if spec else {}


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
    data = agreement(ctx.protocol, ctx.run.records)
    write_atomic(ctx.run.path("artifacts", "agreement.json"), json.dumps(data, indent=2) + "\n")
    primary = ctx.protocol.analysis.primary
    text += f" Agreement on {primary}: {headline(data, primary)}."
    flags = [f for f in ctx.run.records.flags() if f.stage == "evaluate" and f.kind in FLAG_KINDS]
    if flags:
        raisers = {f.raised_by for f in flags}
        text += f" {len(flags)} flags from {len(raisers)} evaluators."
    finish_stage(ctx.run, "evaluate", counts, text)
    return {"stage": "evaluate"}
