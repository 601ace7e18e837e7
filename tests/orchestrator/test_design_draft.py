"""What the designer is told about a draft the loader refuses: the field and the message, with
the line in the stage's own YAML (the one the checkpoint shows), and every error of its own even
when a stand-in for a later stage's sections breaks a rule first."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from orchestrator.design.draft import check_stage, merge
from orchestrator.design.feedback import stage_yaml
from orchestrator.design.stages import stage
from tests.fakes.designer import drafts

DRAFT = Path("draft.yaml")


def line_with(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_an_error_names_the_field_and_its_line_in_the_stages_yaml() -> None:
    plan = copy.deepcopy(drafts()["plan"])
    plan["design"]["n_per_cell"] = 0
    shown = stage_yaml(plan)
    (error,) = check_stage({}, stage("plan"), plan, DRAFT)
    line = line_with(shown, "n_per_cell: 0")
    assert error == f"line {line}: design.n_per_cell: Input should be greater than 0"
    assert "draft.yaml" not in error


def test_a_hand_edits_errors_count_lines_in_the_edit() -> None:
    so_far = merge({}, stage("plan"), drafts()["plan"])
    edited = "\n\n# moved down by the editor\ncomprehension:\n- id: q\n  question: Is it?\n"
    edited += "  answer: maybe\n  explanation: because\n"
    sections = {"comprehension": [{"id": "q", "question": "Is it?", "answer": "maybe"}]}
    sections["comprehension"][0]["explanation"] = "because"
    (error,) = check_stage(so_far, stage("comprehension"), sections, DRAFT, shown=edited)
    assert error.startswith(f"line {line_with(edited, 'answer: maybe')}: ")
    field = "evaluation.comprehension[0].answer (id q)"
    assert f"{field}: answer 'maybe' is not one of the choices" in error


def test_a_batchs_error_names_the_item_by_its_id() -> None:
    """A further batch's tasks sit after the first's in the stage's YAML: the index is of the
    whole list, so the error names the task by its id too."""
    so_far = merge({}, stage("plan"), drafts()["plan"])
    materials = copy.deepcopy(drafts()["materials"])
    task = materials["materials"]["tasks"][9]
    del task["instruction"]
    (error,) = check_stage(so_far, stage("materials"), materials, DRAFT)
    line = line_with(stage_yaml(materials), f"id: {task['id']}")
    assert error == (
        f"line {line}: materials.tasks[9].instruction (id {task['id']}): missing required field"
    )


def test_an_error_in_an_approved_stage_has_no_line() -> None:
    """The analysis names an outcome the (approved) plan does not have: the field is the
    analysis's own, the line its own; a factor-level error in the plan would have none."""
    so_far: dict[str, Any] = {}
    for name in ("plan", "materials", "comprehension"):
        so_far = merge(so_far, stage(name), drafts()[name])
    analysis = copy.deepcopy(drafts()["analysis"])
    analysis["analysis"]["primary"] = "no_such_outcome"
    errors = check_stage(so_far, stage("analysis"), analysis, DRAFT)
    assert errors[0].startswith(f"line {line_with(stage_yaml(analysis), 'primary:')}: ")
    assert "analysis.primary: 'no_such_outcome' is not a bool field" in errors[0]

    # the plan's sections, checked again at the materials stage: a field of another stage
    plan = copy.deepcopy(drafts()["plan"])
    plan["evaluation"]["unblinded"] = ["no_such_factor"]
    so_far = merge({}, stage("plan"), plan)
    errors = check_stage(so_far, stage("materials"), drafts()["materials"], DRAFT)
    assert errors == [
        "evaluation.unblinded[0]: unknown factor 'no_such_factor' (factors: framing, planted)"
    ]


def test_a_stand_ins_error_does_not_hide_the_drafts_own() -> None:
    """A plan without a bool verdict field gives the stand-in analysis no primary outcome to
    name, which breaks the references check; the blinding check after it must still run."""
    plan = copy.deepcopy(drafts()["plan"])
    verdict = plan["evaluation"]["verdict"]
    for spec in verdict.values():
        if spec["type"] == "bool":
            spec.update(type="enum", values=["yes", "no"])
    plan["evaluation"]["comprehension"] = []
    assert check_stage({}, stage("plan"), plan, DRAFT) == []

    plan["evaluation"]["unblinded"] = ["no_such_factor"]
    (error,) = check_stage({}, stage("plan"), plan, DRAFT)
    assert "evaluation.unblinded[0]: unknown factor 'no_such_factor'" in error
    assert error.startswith(f"line {line_with(stage_yaml(plan), '- no_such_factor')}: ")
