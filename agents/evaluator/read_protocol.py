"""`read_protocol`: confirms the protocol (in the system prompt, the prefix every evaluator shares
and the API caches) and unlocks the other tools; returns the verdict fields, the task fields
shown with each item, the comprehension questions and the assignment."""

from __future__ import annotations

from typing import Any

from agents.evaluator.assignment import Assignment
from agents.evaluator.schema import FieldSpec
from agents.prompts import say
from agents.tools import Tool

READ_PROTOCOL = "read_protocol"


def _text(macro: str) -> str:
    return say("tools/read_protocol.j2", macro)


def _field(f: FieldSpec) -> dict[str, Any]:
    """A verdict field as read_protocol shows it: its type and only the constraints it has."""
    out: dict[str, Any] = {"type": f.type}
    if f.values:
        out["levels" if f.type == "ordinal" else "values"] = list(f.values)
    out |= {k: v for k, v in (("min", f.min), ("max", f.max)) if v is not None}
    return out


def read_protocol_tool(work: Assignment) -> Tool:
    def read(_: dict[str, Any]) -> dict[str, Any]:
        work.read = True
        fields = {f.name: _field(f) for f in work.brief.fields}
        out: dict[str, Any] = {
            "design_and_rubric": _text("design_and_rubric"),
            "verdict_fields": fields,
            "items_assigned": len(work.refs),
            "items_remaining": len(work.remaining),
            "chunk_size": work.brief.chunk_size,
        }
        if work.brief.task_fields:
            out["task_fields_shown"] = list(work.brief.task_fields)
        if work.passed:
            return {**out, "next": _text("next_batch")}
        out["comprehension_questions"] = [
            {"id": q.id, "question": q.question, "choices": list(q.choices)}
            for q in work.brief.questions
        ]
        return {**out, "next": _text("next_check")}

    schema = {"type": "object", "properties": {}}
    return Tool(READ_PROTOCOL, _text("description"), schema, read)
