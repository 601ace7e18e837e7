"""`write_notes`: what an evaluator writes to its memory file when its context nears the budget,
to continue from in a fresh conversation (offered only in that one forced call)."""

from __future__ import annotations

from typing import Any

from agents.evaluator.assignment import Assignment
from agents.prompts import say
from agents.tools import Tool

WRITE_NOTES = "write_notes"
TEMPLATE = "tools/write_notes.j2"
PARTS = ("done", "observations", "doubts")


def write_notes_tool(work: Assignment) -> Tool:
    """The tool; its handler writes the notes (the model's, or the facts the orchestrator knows
    when the model wrote none: see `write_unwritten`)."""

    def write(tool_input: dict[str, Any]) -> str:
        notes = [(k, str(tool_input.get(k, "")).strip()) for k in PARTS]
        work.sink.write_notes(work.name, say(TEMPLATE, "notes", notes=notes))
        return "ok"

    properties = {k: {"type": "string"} for k in PARTS}
    schema = {"type": "object", "properties": properties, "required": list(PARTS)}
    return Tool(WRITE_NOTES, say(TEMPLATE, "description"), schema, write)


def write_unwritten(work: Assignment) -> None:
    judged = len(work.refs) - len(work.remaining)
    text = say(TEMPLATE, "unwritten", judged=judged, total=len(work.refs))
    work.sink.write_notes(work.name, text)


def ask() -> str:
    """The turn that asks for the notes."""
    return say(TEMPLATE, "ask")
