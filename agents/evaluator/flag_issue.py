"""`flag_issue`: a data_quality / rubric_ambiguity / parsing / other flag for the researcher, who
sees it at the next checkpoint."""

from __future__ import annotations

from typing import Any

from agents.evaluator.assignment import Assignment
from agents.prompts import say
from agents.tools import Tool, ToolInputError

FLAG_ISSUE = "flag_issue"
FLAG_KINDS = ("data_quality", "rubric_ambiguity", "parsing", "other")
TEMPLATE = "tools/flag_issue.j2"


def flag_issue_tool(work: Assignment) -> Tool:
    def flag(tool_input: dict[str, Any]) -> str:
        work.gate(check=False)
        kind, text = tool_input.get("kind"), str(tool_input.get("text", "")).strip()
        refs = tool_input.get("refs") or []
        if kind not in FLAG_KINDS:
            raise ToolInputError(say(TEMPLATE, "bad_kind", kinds=FLAG_KINDS))
        if not text:
            raise ToolInputError(say(TEMPLATE, "no_text"))
        unknown = [r for r in refs if r not in work.refs]
        if unknown:
            raise ToolInputError(say(TEMPLATE, "unknown_refs", refs=repr(unknown)))
        items = sorted({work.refs[r].item_id for r in refs})
        work.sink.flag(work.name, kind, items, text)
        return say(TEMPLATE, "recorded")

    refs = {"type": "array", "items": {"type": "string"}, "description": say(TEMPLATE, "refs")}
    properties = {
        "kind": {"type": "string", "enum": list(FLAG_KINDS)},
        "refs": refs,
        "text": {"type": "string", "description": say(TEMPLATE, "text")},
    }
    schema = {"type": "object", "properties": properties, "required": ["kind", "refs", "text"]}
    return Tool(FLAG_ISSUE, say(TEMPLATE, "description"), schema, flag)
