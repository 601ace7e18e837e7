"""`get_batch`: hands out up to `chunk_size` blinded items (opaque refs, the input the subject saw,
its response; no condition labels) and refuses more while some are unjudged."""

from __future__ import annotations

from typing import Any

from agents.evaluator.assignment import Assignment
from agents.prompts import say
from agents.tools import Tool, ToolInputError

GET_BATCH = "get_batch"
TEMPLATE = "tools/get_batch.j2"


def get_batch_tool(work: Assignment) -> Tool:
    def get_batch(_: dict[str, Any]) -> dict[str, Any] | str:
        work.gate()
        if work.owed:
            raise ToolInputError(say(TEMPLATE, "pending", refs=work.owed))
        todo = work.remaining[: work.brief.chunk_size]
        if not todo:
            return say(TEMPLATE, "all_judged")
        work.served = todo
        items = [
            {"ref": r, "input": work.refs[r].prompt, "response": work.refs[r].response}
            for r in todo
        ]
        return {"items": items, "remaining_after_these": len(work.remaining) - len(todo)}

    schema = {"type": "object", "properties": {}}
    return Tool(GET_BATCH, say(TEMPLATE, "description"), schema, get_batch)
