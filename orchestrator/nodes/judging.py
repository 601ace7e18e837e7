"""One batch's evaluator agent, as the evaluate stage runs it: its brief from the protocol,
the sink its decisions go to (records.sqlite, LOG.md, memory/ notes), picking it up where its
records leave it, and replacing it when it fails its comprehension check twice. An outage is
returned, not recorded: `evaluate_batch` records the items left as pending.
"""

from __future__ import annotations

from typing import Any

from agents.client import LLMClient, Unavailable
from agents.evaluator import (
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
from orchestrator.context import RunContext
from orchestrator.nodes.probe import trained_probes
from orchestrator.protocol.schema import Protocol, VerdictField
from orchestrator.records import (
    Records,
    Verdict,
    VerdictRole,
    VerdictStatus,
)


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
        record_verdicts(self.ctx, [_verdict(v, evaluator, self.batch_id) for v in verdicts])

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


async def judge(ctx: RunContext, batch_id: str, evaluator: str, work: list[WorkItem]) -> str | None:
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
    record_verdicts(
        ctx,
        [
            Verdict(w.item_id, names[-1], batch_id, unscored, None, reason, w.copy, w.role)
            for w in work
        ],
    )
    return None


def record_verdicts(ctx: RunContext, verdicts: list[Verdict]) -> None:
    """Store verdicts as they come; the evaluate stage's progress counts an item when its first
    primary verdict is stored (a pending one is not a verdict yet)."""
    rec = ctx.run.records
    primary = [v for v in verdicts if v.role == VerdictRole.PRIMARY]
    before = {v.item_id for v in rec.verdicts() if v.status != VerdictStatus.PENDING}
    rec.add_verdicts(verdicts)
    new = {v.item_id for v in primary if v.status != VerdictStatus.PENDING} - before
    if new:
        ctx.progress.advance("evaluate", len(new))


def _truesight_tool(ctx: RunContext) -> TruesightTool | None:
    """The truesight tool for a tool-using evaluator, when the protocol has probes."""
    if ctx.protocol.probes is None or ctx.protocol.evaluation.agent != "tools":
        return None
    trained = trained_probes(ctx)
    return TruesightTool(ctx.truesight(), ctx.run.records, {}, _probe_params(ctx), trained)


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
