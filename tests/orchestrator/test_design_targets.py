"""The plan declares the materials' kinds and counts (`materials_plan`, kept in the design
session, never in the protocol); the materials stage asks for batches until the counts are
reached, says at the checkpoint what is still short after the last batch allowed, and holds the
drafts to the declared kinds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.design.flow import StageDecision, StageView
from orchestrator.design.stages import MAX_BATCHES
from orchestrator.design.start import approve_all, start_design
from orchestrator.protocol.loader import load_protocol
from tests.conftest import DEU
from tests.fakes.anthropic_server import FakeAnthropic, tool_use
from tests.fakes.designer import QUESTION, designer, drafts

PER_CALL = 3
"""Tasks (and plants) the slow designer writes per materials call."""


@pytest.fixture
def server(design_env: FakeAnthropic) -> FakeAnthropic:
    """The scripted designer's server (tests/orchestrator/conftest.py); a test may swap its
    handler."""
    return design_env


def briefs(server: FakeAnthropic, tool: str) -> list[str]:
    return [
        r.body["messages"][0]["content"]
        for r in server.requests
        if r.body.get("tool_choice", {}).get("name") == tool
    ]


def refusals(server: FakeAnthropic, tool: str) -> list[str]:
    return [
        text
        for r in server.requests
        if r.body.get("tool_choice", {}).get("name") == tool
        for text in refused(r.body)
    ]


def kinds_first(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One of each kind first, then the rest: a slow designer that still covers every kind."""
    firsts = list({i["kind"]: i for i in reversed(items)}.values())[::-1]
    return firsts + [i for i in items if i not in firsts]


def slow_designer(body: dict[str, Any]) -> dict[str, Any]:
    """Writes `PER_CALL` tasks and plants per materials call, whatever it is asked for."""
    name = body["tool_choice"]["name"]
    if not name.endswith("_materials"):
        return designer(body)
    materials = drafts()["materials"]
    tasks = kinds_first(materials["materials"]["tasks"])
    plants = kinds_first(materials["materials"]["plants"])
    n = _batch(body)
    part = slice(n * PER_CALL, (n + 1) * PER_CALL)
    if name == "add_materials":
        return tool_use(name, {"tasks": tasks[part], "plants": plants[part]})
    materials["materials"].update(tasks=tasks[part], plants=plants[part])
    return tool_use(name, materials)


def approving(views: list[StageView]) -> Callable[[StageView], StageDecision]:
    """An approver that approves every stage and keeps what each checkpoint showed."""

    def approve(view: StageView) -> StageDecision:
        views.append(view)
        return approve_all(view)

    return approve


def _batch(body: dict[str, Any]) -> int:
    brief = body["messages"][0]["content"]
    if "Now add batch " not in brief:
        return 0
    return int(brief.split("Now add batch ", 1)[1].split()[0]) - 1


def test_batches_until_the_plans_counts_then_the_checkpoint_says_what_is_short(
    server: FakeAnthropic, tmp_path: Path
) -> None:
    server.handler = slow_designer
    views: list[StageView] = []
    out = tmp_path / "short.yaml"
    start_design(QUESTION, example=DEU, out=out, approver=approving(views))

    # the plan's checkpoint shows the materials plan
    plan_view = views[0]
    declared = yaml.safe_load(plan_view.text)["materials_plan"]
    assert declared == drafts()["plan"]["materials_plan"]
    assert declared["tasks"] == 16 and declared["plants"] == 14

    # each call is told the targets and, after the first, what is there and still missing
    first = briefs(server, "write_materials")
    assert "The plan declares 16 tasks of the kinds summarise, action_items" in first[0]
    assert "In this call write 8 tasks and 7 planted instructions" in first[0]
    added = briefs(server, "add_materials")
    assert len(added) == MAX_BATCHES - 1  # bounded, though the counts were never reached
    assert "The materials have 3 tasks and 3 plants so far" in added[0]
    assert "In this call write 8 tasks and 7 planted instructions" in added[0]
    assert "have 9 tasks and 9 plants so far" in added[-1]
    assert "In this call write 7 tasks and 5 planted instructions" in added[-1]

    # the design does not fail: the checkpoint says what is short, and the log keeps it
    (materials_view,) = [v for v in views if v.stage.name == "materials"]
    have = MAX_BATCHES * PER_CALL
    assert materials_view.short == [
        f"tasks: {have} of the 16 the plan declares",
        f"plants: {have} of the 14 the plan declares",
    ]
    session = next((tmp_path / "runs" / ".designs").iterdir())
    assert f"tasks: {have} of the 16 the plan declares" in (session / "LOG.md").read_text()

    # design-only: kept in the session, not in the protocol
    kept = yaml.safe_load((session / "stages" / "plan.yaml").read_text())
    assert kept["sections"]["materials_plan"] == declared
    assert "materials_plan" not in out.read_text()
    assert len(load_protocol(out).protocol.materials.tasks) == have


TRANSLATE = {
    "id": "translate-menu",
    "kind": "translate",
    "instruction": "Can you read menus/gasthaus.txt and translate it into English for the "
    "client visiting on Friday?",
    "fields": {"path": "menus/gasthaus.txt"},
    "document": "Vorspeisen: Kürbissuppe mit Kernöl. Hauptgang: Zwiebelrostbraten mit "
    "Bratkartoffeln, dazu Krautsalat. Nachspeise: Apfelstrudel mit Vanillesauce.",
}


def refused(body: dict[str, Any]) -> list[str]:
    last = body["messages"][-1]["content"]
    return [b["content"] for b in last if b.get("is_error")] if isinstance(last, list) else []


def test_a_declared_kind_left_out_at_the_last_batch_goes_back(
    server: FakeAnthropic, tmp_path: Path
) -> None:
    """The plan declares a task kind the default materials lack; the batch that reaches the
    counts is told so, and adds one; earlier batches are not held to it."""

    def translating(body: dict[str, Any]) -> dict[str, Any]:
        name = body["tool_choice"]["name"]
        reply = designer(body)
        sent = reply["content"][0]["input"]
        if name == "write_plan":
            sent["materials_plan"]["task_kinds"].append("translate")
        elif name == "add_materials" and any("translate" in r for r in refused(body)):
            sent["tasks"].append(TRANSLATE)
        return reply

    server.handler = translating
    out = tmp_path / "translated.yaml"
    start_design(QUESTION, example=DEU, out=out, yes=True)
    assert len(briefs(server, "write_materials")) == 1
    (sent_back,) = [r for r in refusals(server, "add_materials") if "translate" in r]
    assert "materials.tasks: no task yet of the declared kind(s) translate; add some" in sent_back
    tasks = load_protocol(out).protocol.materials.tasks
    assert TRANSLATE["id"] in [t.id for t in tasks]


def test_a_materials_plan_that_cannot_be_met_goes_back_to_the_designer(
    server: FakeAnthropic, tmp_path: Path
) -> None:
    def too_few(body: dict[str, Any]) -> dict[str, Any]:
        reply = designer(body)
        if body["tool_choice"]["name"] == "write_plan" and len(body["messages"]) == 1:
            reply["content"][0]["input"]["materials_plan"]["tasks"] = 2
        return reply

    server.handler = too_few
    start_design(QUESTION, example=DEU, out=tmp_path / "p.yaml", yes=True)
    refused = refusals(server, "write_plan")
    kinds = len(drafts()["plan"]["materials_plan"]["task_kinds"])
    assert any(
        f"materials_plan: tasks (2) is fewer than the task kinds ({kinds}): each declared kind "
        "needs at least one task" in r
        for r in refused
    )


def test_a_plan_without_a_materials_plan_is_batched_as_before(
    server: FakeAnthropic, tmp_path: Path
) -> None:
    """A plan approved before plans declared one (or written by a form that has none): two
    batches, and at least three kinds, as then."""

    def undeclared(body: dict[str, Any]) -> dict[str, Any]:
        reply = designer(body)
        reply["content"][0]["input"].pop("materials_plan", None)
        return reply

    server.handler = undeclared
    out = tmp_path / "legacy.yaml"
    start_design(QUESTION, example=DEU, out=out, yes=True)
    assert len(briefs(server, "write_materials")) == 1
    assert len(briefs(server, "add_materials")) == 2  # the near-duplicate, then the fixed batch
    assert "The plan declares" not in briefs(server, "write_materials")[0]
    assert len(load_protocol(out).protocol.materials.tasks) == 16


def stubborn_designer(body: dict[str, Any]) -> dict[str, Any]:
    """Repeats the first task under another id in every materials draft, whatever it is told."""
    name = body["tool_choice"]["name"]
    reply = designer(body)
    if name != "write_materials":
        return reply
    materials = drafts()["materials"]
    tasks = materials["materials"]["tasks"]
    tasks.append({**tasks[0], "id": "same-again"})
    return tool_use(name, materials)


def test_a_near_duplicate_never_fixed_is_the_humans_call_not_a_failure(
    server: FakeAnthropic, tmp_path: Path
) -> None:
    """The loader's errors are fatal; a materials finding the designer still has not fixed at
    its last attempt is taken and shown at the checkpoint (and in the file, under --yes)."""
    server.handler = stubborn_designer
    views: list[StageView] = []
    out = tmp_path / "stubborn.yaml"
    start_design(QUESTION, example=DEU, out=out, approver=approving(views), yes=True)
    assert len(refusals(server, "write_materials")) == 3  # four attempts, three sent back
    (materials_view,) = [v for v in views if v.stage.name == "materials"]
    (warning,) = materials_view.warnings
    assert warning.startswith("materials.tasks: near-duplicates") and "same-again" in warning
    assert "same-again" in [t.id for t in load_protocol(out).protocol.materials.tasks]
    assert "taken with 1 materials finding(s) not fixed, in the design's LOG.md: " in (
        out.read_text()
    )
    session = next((tmp_path / "runs" / ".designs").iterdir())
    assert (
        "Taken on the last attempt; the materials checks still say:"
        in (session / "LOG.md").read_text()
    )
