"""pydantic's validation errors in the researcher's words: each at its file, line and field, with
what to write instead of a regex or a type name."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from orchestrator.errors import ProtocolError
from orchestrator.protocol.schema import KEY, SLUG
from orchestrator.protocol.yamlmap import Path_, dotted, line_of

ALLOWED = {
    KEY: "letters, digits, '_' and '-' (no '.': it becomes part of cell keys and item ids, "
    "which are joined with '.')",
    SLUG: "letters, digits, '_', '-' and '.'",
}
"""What each name pattern allows, in words: a raw regex helps no one."""


def from_validation(e: ValidationError, path: Path, lines: dict[Path_, int]) -> ProtocolError:
    """The first error, with the others found in the same pass attached to it."""
    errors = []
    for err in e.errors():
        loc = _without_form_tag(tuple(err["loc"]))
        kind, msg = err["type"], err["msg"]
        if kind == "extra_forbidden":
            msg = _unknown_field(loc)
        elif kind == "missing":
            msg = "missing required field"
        elif kind == "string_pattern_mismatch":
            msg = name_problem(err["input"], err["ctx"]["pattern"])
        elif kind == "value_error":  # a validator's own words, without pydantic's prefix
            msg = str(err["ctx"]["error"])
        errors.append(ProtocolError(msg, file=path, line=line_of(lines, loc), field=dotted(loc)))
    first = errors[0]
    first.others = errors[1:]
    return first


def _without_form_tag(loc: Path_) -> Path_:
    """`materials.templates` and a hypothesis' `test` are each one of two forms; pydantic names
    the form in the location."""
    if loc[:2] == ("materials", "templates") and len(loc) > 2 and loc[2] in ("keys", "turns"):
        return loc[:2] + loc[3:]
    if loc[:1] == ("hypotheses",) and loc[2:3] == ("test",) and loc[3:4] in (("one",), ("all",)):
        return loc[:3] + loc[4:]
    return loc


def _unknown_field(loc: Path_) -> str:
    if loc[:2] == ("materials", "templates") and len(loc) == 3:
        return (
            "unknown template: templates take `system` and `user`, or, for a longer "
            "conversation, a list of turns (`- system: ...`, `- user: ...`, `- assistant: ...` "
            "or `- assistant: {generate: true}`, `- tool_use: {name: ..., input: ...}`, "
            "`- tool_result: ...`) ending with a user or tool_result turn"
        )
    if loc[:2] == ("materials", "templates") and len(loc) == 4:
        return (
            "unknown turn: a turn is `- system: ...`, `- user: ...`, `- assistant: ...`, "
            "`- tool_use: {name: ..., input: {...}, text: ...}` or `- tool_result: ...`"
        )
    if loc[:2] == ("materials", "templates") and len(loc) == 5 and loc[3] == "tool_use":
        return "unknown field: a tool_use turn takes name, input and text"
    if loc[:2] == ("materials", "tasks") and len(loc) == 4:
        return (
            "unknown field: tasks take id, kind, instruction and document; put further data "
            "under `fields:`, e.g. fields: {answer: Paris}, and use it as {{ fields.answer }}"
        )
    return "unknown field"


def name_problem(value: object, pattern: str = KEY) -> str:
    """Why `value` is not a name, in words, with what to write instead."""
    allowed = ALLOWED.get(pattern, f"text matching {pattern}")
    return (
        f"{value!r} is not a valid name: use {allowed}, starting with a letter or digit, at "
        "most 64 characters (e.g. claude-sonnet, framing_by_model)"
    )
