"""`comprehension_check`: the evaluator's answers to the protocol's questions, scored against the
expected ones. A failed check is re-primed once with the explanations; a second failure ends the
agent (`Replaced`) and the orchestrator hands its work to a fresh one."""

from __future__ import annotations

from typing import Any

from agents.evaluator.assignment import Assignment
from agents.evaluator.brief import Question, Replaced
from agents.prompts import say
from agents.tools import Tool, ToolInputError

COMPREHENSION_CHECK = "comprehension_check"
TEMPLATE = "tools/comprehension_check.j2"


def comprehension_tool(work: Assignment) -> Tool:
    questions = work.brief.questions

    def check(tool_input: dict[str, Any]) -> str:
        work.gate(check=False)
        if work.passed:
            return say(TEMPLATE, "already_passed")
        raw = tool_input.get("answers")
        answers = {k: str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        wrong = [q for q in questions if answers.get(q.id) != q.answer]
        right = len(questions) - len(wrong)
        passed = right >= work.brief.pass_mark * len(questions) - 1e-9
        work.check_attempts += 1
        _record(work, answers, wrong, passed)
        if passed:
            work.passed = True
            return say(TEMPLATE, "passed", right=right, total=len(questions))
        if work.check_attempts >= 2:
            raise Replaced(f"{work.name} failed the comprehension check twice")
        given = [(q, repr(answers.get(q.id, "(none)"))) for q in wrong]
        raise ToolInputError(
            say(TEMPLATE, "failed", right=right, total=len(questions), wrong=given)
        )

    return Tool(COMPREHENSION_CHECK, say(TEMPLATE, "description"), _schema(questions), check)


def _record(work: Assignment, answers: dict[str, str], wrong: list[Question], passed: bool) -> None:
    """To the sink, and a line in LOG.md (for the researcher, not the model)."""
    total = len(work.brief.questions)
    attempt = work.sink.comprehension(work.name, answers, [q.id for q in wrong], passed)
    outcome = "passed" if passed else "failed"
    missed = f" (wrong: {', '.join(q.id for q in wrong)})" if wrong else ""
    text = (
        f"{work.name} comprehension check attempt {attempt}: {total - len(wrong)}/{total} right, "
        f"{outcome}{missed}"
    )
    work.sink.log(work.name, "comprehension", text)


def _schema(questions: list[Question]) -> dict[str, Any]:
    props = {
        q.id: {"type": "string", "enum": list(q.choices), "description": q.question}
        for q in questions
    }
    answers = {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }
    return {"type": "object", "properties": {"answers": answers}, "required": ["answers"]}
