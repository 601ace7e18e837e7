"""`submit_verdicts`: validates each verdict against the protocol's fields (pydantic); errors go
back as a tool error to fix; after `max_attempts` failed tries an item is recorded *unscored*
with the reason. Verdicts may cite truesight readouts by id."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from agents.evaluator.assignment import Assignment
from agents.evaluator.schema import SUBMIT_VERDICTS, submit_definition
from agents.prompts import say
from agents.tools import Tool, ToolInputError, explain

TEMPLATE = "tools/submit_verdicts.j2"


def submit_verdicts_tool(work: Assignment, refs: list[str] | None = None) -> Tool:
    """The tool; with `refs`, its input is keyed by exactly those refs (the scripted mode)."""
    definition = submit_definition(work.brief.fields, refs)
    handler = _keyed(work) if refs else _submitter(work)
    return Tool(SUBMIT_VERDICTS, definition["description"], definition["input_schema"], handler)


def _keyed(work: Assignment) -> Any:
    submit = _submitter(work)

    def keyed(tool_input: dict[str, Any]) -> str:
        verdicts = tool_input.get("verdicts")
        if isinstance(verdicts, dict):  # {ref: verdict}, as the keyed schema asks
            listed = [{"ref": r, **v} if isinstance(v, dict) else v for r, v in verdicts.items()]
            tool_input = {**tool_input, "verdicts": listed}
        return submit(tool_input)

    return keyed


def _submitter(work: Assignment) -> Any:
    def submit(tool_input: dict[str, Any]) -> str:
        work.gate()
        verdicts = tool_input.get("verdicts")
        if not isinstance(verdicts, list):
            raise ToolInputError(say(TEMPLATE, "not_a_list"))
        accepted: list[str] = []
        errors: dict[str, str] = {}
        for raw in verdicts:
            ref = raw.get("ref") if isinstance(raw, dict) else None
            if ref not in work.served or ref in work.done:
                if ref is not None and ref not in work.done:
                    errors[str(ref)] = say(TEMPLATE, "not_served")
                continue
            error = _take(work, ref, raw)
            if error is None:
                accepted.append(ref)
            elif ref not in work.done:
                errors[ref] = error
        return _reply(work, accepted, errors)

    return submit


def _take(work: Assignment, ref: str, raw: dict[str, Any]) -> str | None:
    """Record one verdict; or count a failed try and return what was wrong with it."""
    cites = raw.pop("truesight_ids", None) or []
    try:
        fields = work.schema.model_validate(raw).model_dump()
        bad = [c for c in cites if not isinstance(c, int)]
        if bad or (unknown := work.sink.unknown_probe_ids(list(cites))):
            raise ValueError(say(TEMPLATE, "bad_cites", ids=repr(bad or unknown)))
    except (ValidationError, ValueError) as e:
        message = explain(e, root="verdict")
        work.fail(ref, message)
        return message
    fields.pop("ref")
    work.finish(ref, fields, None, tuple(cites))
    return None


def _reply(work: Assignment, accepted: list[str], errors: dict[str, str]) -> str:
    missing = [r for r in work.served if r not in work.done and r not in errors]
    if errors or missing:
        refused = say(
            TEMPLATE, "refused", accepted=accepted, errors=list(errors.items()), missing=missing
        )
        raise ToolInputError(refused)
    unscored = [r for r in work.served if work.done[r].fields is None]
    work.served = []
    return say(
        TEMPLATE,
        "accepted",
        count=len(accepted),
        unscored=len(unscored),
        max_attempts=work.max_attempts,
        left=len(work.remaining),
    )
