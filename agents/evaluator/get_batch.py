"""`get_batch`: hands out up to `chunk_size` blinded items (opaque refs, the input the subject saw,
its response, and the task fields the protocol shows judges; no condition labels) and refuses
more while some are unjudged."""

from __future__ import annotations

from typing import Any

from agents.evaluator.assignment import Assignment
from agents.evaluator.brief import WorkItem
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
        items = [_item(r, work.refs[r], work.brief.task_fields) for r in todo]
        return {"items": items, "remaining_after_these": len(work.remaining) - len(todo)}

    schema = {"type": "object", "properties": {}}
    return Tool(GET_BATCH, say(TEMPLATE, "description"), schema, get_batch)


def _item(ref: str, w: WorkItem, shown: tuple[str, ...]) -> dict[str, Any]:
    """One item as the judge reads it; shown task fields apart from the input, labelled, and
    said to be absent where the item's task lacks one."""
    out: dict[str, Any] = {"ref": ref, "input": w.prompt, "response": w.response}
    if shown:
        absent = say(TEMPLATE, "absent")
        fields = {n: w.task_fields.get(n) for n in shown}
        out["task_fields"] = {n: absent if v is None else v for n, v in fields.items()}
    return out
