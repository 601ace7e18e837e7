"""Verdict field types as the evaluator checks them: an int within its range and an ordinal's
levels, in the pydantic model, in the submit tool's JSON schema, and as a tool error the model
can fix."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agents.evaluator import AgentVerdict, Brief, FieldSpec, WorkItem, verdict_model
from agents.evaluator.assignment import Assignment
from agents.evaluator.schema import submit_definition, verdict_schema
from agents.evaluator.submit_verdicts import submit_verdicts_tool
from agents.tools import ToolInputError

LEVELS = ("none", "low", "medium", "high")
FIELDS = [
    FieldSpec("detected", "bool"),
    FieldSpec("turns", "int", description="Turns until it noticed.", min=0, max=5),
    FieldSpec("confidence", "ordinal", LEVELS, "How sure the response is."),
    FieldSpec("count", "int"),  # no range
]
VALID = {"ref": "R01", "detected": True, "turns": 5, "confidence": "low", "count": -40}


@pytest.mark.parametrize(
    "change",
    [{"turns": 0}, {"turns": 5}, {"confidence": "none"}, {"confidence": "high"}, {"count": 10**6}],
)
def test_the_model_accepts_values_in_range_and_known_levels(change: dict[str, Any]) -> None:
    got = verdict_model(FIELDS).model_validate({**VALID, **change}).model_dump()
    assert got == {**VALID, **change}  # kept as given: an ordinal stays its level's name


@pytest.mark.parametrize(
    "change,where",
    [
        ({"turns": 6}, "turns"),
        ({"turns": -1}, "turns"),
        ({"turns": "3"}, "turns"),  # strict: a string is not an int
        ({"turns": 2.5}, "turns"),
        ({"confidence": "very high"}, "confidence"),
        ({"confidence": "High"}, "confidence"),
        ({"confidence": 2}, "confidence"),  # a level, not its position
    ],
)
def test_the_model_refuses_out_of_range_ints_and_unknown_levels(
    change: dict[str, Any], where: str
) -> None:
    with pytest.raises(ValidationError) as e:
        verdict_model(FIELDS).model_validate({**VALID, **change})
    assert [err["loc"] for err in e.value.errors()] == [(where,)]


def test_the_tool_schema_carries_the_range_and_the_ordered_levels() -> None:
    props = verdict_schema(FIELDS)["properties"]
    assert props["turns"] == {
        "description": "Turns until it noticed.",
        "type": "integer",
        "minimum": 0,
        "maximum": 5,
    }
    assert props["count"] == {"description": "", "type": "integer"}
    assert props["confidence"]["type"] == "string"
    assert props["confidence"]["enum"] == list(LEVELS)
    assert "none < low < medium < high" in props["confidence"]["description"]
    # the scripted mode's keyed schema, which constrained decoding follows, has them too
    keyed = submit_definition(FIELDS, ["R01"])["input_schema"]["properties"]["verdicts"]
    assert keyed["properties"]["R01"]["properties"]["turns"]["maximum"] == 5


class Sink:
    def __init__(self) -> None:
        self.got: list[AgentVerdict] = []

    def verdicts(self, evaluator: str, verdicts: list[AgentVerdict]) -> None:
        self.got += verdicts

    def unknown_probe_ids(self, ids: list[int]) -> list[int]:
        return ids


def test_the_tool_refuses_them_back_to_the_model_then_takes_the_fix() -> None:
    sink = Sink()
    items = {f"R0{k}": WorkItem(f"cell.00{k}", 0, "primary", "Q", "A") for k in (1, 2)}
    work = Assignment("evaluator-1", Brief("T", "Q?", "Judge.", FIELDS), sink, items)  # type: ignore[arg-type]
    work.read = work.passed = True
    work.served = ["R01", "R02"]
    tool = submit_verdicts_tool(work)
    bad = [
        {**VALID, "turns": 9},
        {**VALID, "ref": "R02", "confidence": "certain"},
    ]
    with pytest.raises(ToolInputError) as e:
        tool.handler({"verdicts": bad})
    message = str(e.value)
    assert "R01: " in message and "turns" in message and "less than or equal to 5" in message
    assert "R02: " in message and "confidence" in message and "'medium'" in message
    assert sink.got == []  # nothing recorded yet: one failed try each, under max_attempts
    fixed = [{**VALID, "turns": 4}, {**VALID, "ref": "R02", "confidence": "medium"}]
    tool.handler({"verdicts": fixed})
    assert [v.fields for v in sink.got] == [
        {"detected": True, "turns": 4, "confidence": "low", "count": -40},
        {"detected": True, "turns": 5, "confidence": "medium", "count": -40},
    ]
