"""The designer agent: a forced write_<stage> call whose refused draft goes back to the model
with the check's words until one is accepted; and every stage's schema is one the local
worker's constrained decoding can compile (what makes a small model's drafts schema-valid)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import llguidance
import pytest

from agents.client import Endpoint, LLMClient
from agents.designer.agent import StageBrief, draft_stage
from agents.loop import Retry
from orchestrator.design.stages import STAGES, batch_schema, stage_schema
from orchestrator.records import Records
from tests.fakes.anthropic_server import FakeAnthropic, tool_use
from truesight.constrain import _JSON_OPTIONS

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}},
    "required": ["title"],
}


def run(server: FakeAnthropic, tmp_path: Path, check: Any, **brief: Any) -> Any:
    async def go() -> Any:
        records = Records(tmp_path / "records.sqlite")
        endpoint = Endpoint(base_url=server.url, api_key="k", max_retries=0)
        async with LLMClient(endpoint, records, "sha") as client:
            return await draft_stage(
                client,
                StageBrief(question="Q?", stage="plan", title="the plan", so_far="", **brief),
                schema=SCHEMA,
                check=check,
                model="m",
                params={"max_tokens": 100},
                max_attempts=3,
                retry=Retry(0, 0.0),
            )

    return asyncio.run(go())


def test_a_refused_draft_goes_back_with_the_checks_words(tmp_path: Path) -> None:
    titles = iter(["bad", "good"])

    def check(draft: dict[str, Any], last: bool) -> list[str]:
        return [] if draft["title"] == "good" else ["line 3: title: too bad"]

    with FakeAnthropic(lambda body: tool_use("write_plan", {"title": next(titles)})) as server:
        result = run(server, tmp_path, check)
    assert result.sections == {"title": "good"}
    assert len(result.calls) == 2
    second = server.requests[1].body
    assert second["tool_choice"] == {"type": "tool", "name": "write_plan"}
    refusal = second["messages"][-1]["content"][0]
    assert refusal["is_error"] and "line 3: title: too bad" in refusal["content"]


def test_a_draft_never_accepted_is_an_error_not_a_draft(tmp_path: Path) -> None:
    with FakeAnthropic(lambda body: tool_use("write_plan", {"title": "x"})) as server:
        result = run(server, tmp_path, lambda draft, last: ["line 1: title: no"])
    assert result.sections is None
    assert "after 3 attempts" in result.error and "title: no" in result.error
    assert len(server.requests) == 3


def test_a_revision_tells_the_model_the_note_and_is_a_new_call(tmp_path: Path) -> None:
    with FakeAnthropic(lambda body: tool_use("write_plan", {"title": "t"})) as server:
        run(server, tmp_path, lambda draft, last: [])
        run(
            server,
            tmp_path,
            lambda draft, last: [],
            note="shorter",
            rejected="title: t",
            revision=1,
        )
        run(server, tmp_path, lambda draft, last: [])  # the first again: from the ledger
    assert len(server.requests) == 2
    brief = server.requests[1].body["messages"][0]["content"]
    assert "<note>\nshorter\n</note>" in brief and "title: t" in brief
    assert "rejected too" not in brief


def test_a_second_revision_keeps_to_every_note(tmp_path: Path) -> None:
    with FakeAnthropic(lambda body: tool_use("write_plan", {"title": "t"})) as server:
        revision = {"note": "plainer", "rejected": "title: s", "earlier": ("shorter",)}
        run(server, tmp_path, lambda draft, last: [], revision=2, **revision)
    brief = server.requests[0].body["messages"][0]["content"]
    assert "with these notes (oldest first); keep to them:\n- shorter\n" in brief
    assert "<note>\nplainer\n</note>" in brief


@pytest.mark.parametrize("stage", [s.name for s in STAGES] + ["add_materials"])
def test_every_stage_schema_compiles_for_constrained_decoding(stage: str) -> None:
    schema = batch_schema() if stage == "add_materials" else stage_schema(stage)
    grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=_JSON_OPTIONS)
    assert grammar
