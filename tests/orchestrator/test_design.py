"""research design: the designer drafts a protocol stage by stage against the fake server; the
loader's errors go back to it, a rejection note reaches it, and the protocol it writes validates
and runs at pilot size."""

from __future__ import annotations

import json
from pathlib import Path

import pexpect
import pytest
from typer.testing import CliRunner

from orchestrator import runner
from orchestrator.cli.app import app
from orchestrator.design.feedback import stage_yaml
from orchestrator.design.flow import StageDecision, StageView
from orchestrator.design.start import approve_all, start_design
from orchestrator.errors import UserError
from orchestrator.protocol.loader import load_protocol
from tests.conftest import DEU, research
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.designer import (
    DUPLICATE_ID,
    QUESTION,
    REVISED_PLANT,
    designer,
    good_protocol,
    is_designer,
)
from tests.fakes.world import agent_judge, deu_world, expected_answers
from tests.orchestrator.test_terminal import spawn_tty
from tests.truesight.workers import Worker

NOTE = "Add a plant that tries to harvest credentials from the workspace."


def requests_for(server: FakeAnthropic, tool: str) -> list[dict]:
    return [r.body for r in server.requests if r.body.get("tool_choice", {}).get("name") == tool]


class Scripted:
    """Approves every stage but rejects the first materials draft with NOTE."""

    def __init__(self) -> None:
        self.views: list[StageView] = []

    def __call__(self, view: StageView) -> StageDecision:
        self.views.append(view)
        if view.stage.name == "materials" and view.revision == 0:
            return StageDecision("reject", NOTE, by="tester")
        return StageDecision("approve", "looks right", by="tester")


def test_each_stage_is_checked_by_the_loader_and_decided_by_a_human(
    design_env: FakeAnthropic, tmp_path: Path
) -> None:
    out = tmp_path / "tampered.yaml"
    approver = Scripted()
    start_design(QUESTION, example=DEU, out=out, approver=approver)

    # the plan's loader error went back with its field and its line in the plan's own YAML,
    # and the fixed plan was accepted
    plans = requests_for(design_env, "write_plan")
    assert len(plans) == 2
    refusal = plans[1]["messages"][-1]["content"][0]
    assert refusal["is_error"]
    (sent,) = [b for b in plans[1]["messages"][-2]["content"] if b["type"] == "tool_use"]
    shown = stage_yaml(sent["input"])
    line = next(i for i, t in enumerate(shown.splitlines(), 1) if "n_per_cell: 0" in t)
    assert f"line {line}: design.n_per_cell: Input should be greater than 0" in refusal["content"]
    assert "draft.yaml" not in refusal["content"]
    # the --from example is the designer's style guide
    assert "Deliberate Epistemic Uncertainty" in plans[0]["messages"][0]["content"]

    # the rejection note reached the designer with the rejected draft; the revision is written
    materials = requests_for(design_env, "write_materials")
    assert len(materials) == 2
    assert NOTE in materials[1]["messages"][0]["content"]
    assert NOTE not in materials[0]["messages"][0]["content"]
    assert [(v.stage.name, v.revision) for v in approver.views] == [
        ("plan", 0),
        ("materials", 0),
        ("materials", 1),
        ("comprehension", 0),
        ("analysis", 0),
    ]
    assert "precision:" in approver.views[-1].forecast

    # the materials came in two batches: the second was told what the first wrote, and its
    # near-duplicate of a task went back to it
    added = requests_for(design_env, "add_materials")
    assert len(added) == 4  # per revision: the near-duplicate, then the fixed batch
    first_task = good_protocol()["materials"]["tasks"][0]["id"]
    assert f"id: {first_task}" in added[0]["messages"][0]["content"]
    refusal = added[1]["messages"][-1]["content"][0]["content"]
    assert (
        f"near-duplicates (word-shingle Jaccard ≥ 0.5): {first_task} and {DUPLICATE_ID}" in refusal
    )

    protocol = load_protocol(out).protocol
    assert REVISED_PLANT["id"] in [p.id for p in protocol.materials.plants]
    shipped = good_protocol()["materials"]
    assert [t.id for t in protocol.materials.tasks] == [t["id"] for t in shipped["tasks"]]
    assert protocol.question == QUESTION
    text = out.read_text()
    assert text.startswith("# Drafted by `research design` with claude-sonnet-4-6 on ")
    assert "# Stage materials: approved by tester (looks right)" in text
    session = next((tmp_path / "runs" / ".designs").iterdir())
    log = (session / "LOG.md").read_text()
    assert NOTE in log
    assert "design.n_per_cell" in log
    assert json.loads((session / "session.json").read_text())["status"] == "written"


class Stop(Exception):
    pass


def test_a_design_stopped_and_started_again_pays_no_call_twice(
    design_env: FakeAnthropic, tmp_path: Path
) -> None:
    out = tmp_path / "tampered.yaml"

    def stop_at_the_revision(view: StageView) -> StageDecision:
        if view.stage.name == "materials":
            if view.revision == 1:
                raise Stop  # drafted, paid, not yet decided
            return StageDecision("reject", NOTE, by="tester")
        return approve_all(view)

    with pytest.raises(Stop):
        start_design(QUESTION, example=DEU, out=out, approver=stop_at_the_revision)
    assert not out.exists()
    before = len(design_env.requests)
    assert len(requests_for(design_env, "write_materials")) == 2
    assert len(requests_for(design_env, "add_materials")) == 4

    start_design(QUESTION, example=DEU, out=out, yes=True)
    # the approved plan is not drafted again; the rejection is kept, and the revision it asked
    # for replays from the ledger
    tools = [r.body["tool_choice"]["name"] for r in design_env.requests[before:]]
    assert tools == ["write_comprehension", "write_analysis"]
    text = out.read_text()
    assert "without human review" in text
    assert REVISED_PLANT["id"] in [p.id for p in load_protocol(out).protocol.materials.plants]


def test_an_existing_file_is_never_overwritten(design_env: FakeAnthropic, tmp_path: Path) -> None:
    out = tmp_path / "taken.yaml"
    out.write_text("mine\n")
    with pytest.raises(UserError, match="exists"):
        start_design(QUESTION, out=out, yes=True)
    assert out.read_text() == "mine\n"
    assert design_env.requests == []


def test_without_out_the_plans_id_names_the_file_and_a_taken_name_gets_a_number(
    design_env: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "protocols" / "tampered_tools.yaml"  # the fake plan's id
    mine.parent.mkdir()
    mine.write_text("mine\n")

    first = start_design(QUESTION, example=DEU, yes=True)
    assert first == Path("protocols/tampered_tools-2.yaml")
    assert load_protocol(first).protocol.id == "tampered_tools"
    assert mine.read_text() == "mine\n"
    session = json.loads(next((tmp_path / "runs" / ".designs").glob("*/session.json")).read_text())
    assert session["out"] == "protocols/tampered_tools-2.yaml"

    # the CLI says where it wrote; a design of the same question again takes the next number
    result = CliRunner().invoke(app, ["design", QUESTION, "--from", str(DEU), "--yes"])
    assert result.exit_code == 0, result.output
    assert "wrote protocols/tampered_tools-3.yaml;" in " ".join(result.output.split())
    assert (tmp_path / "protocols" / "tampered_tools-3.yaml").exists()


def test_a_hand_edit_is_checked_before_it_is_taken(
    design_env: FakeAnthropic, tmp_path: Path
) -> None:
    out = tmp_path / "edited.yaml"
    seen: list[StageView] = []

    def edit_comprehension(view: StageView) -> StageDecision:
        seen.append(view)
        if view.stage.name != "comprehension":
            return approve_all(view)
        if not view.errors:  # first: an answer that is not one of the question's choices
            return StageDecision("edit", edited=view.text.replace("answer:", "answer: x", 1))
        fixed = "comprehension: []\n"
        return StageDecision("edit", edited=fixed)

    start_design(QUESTION, out=out, approver=edit_comprehension)
    broken = [v for v in seen if v.errors]
    # a cross-section rule of the loader, checked before the analysis stage exists
    assert len(broken) == 1
    edited = broken[0].text.splitlines()
    line = next(i for i, t in enumerate(edited, 1) if "answer: x" in t)
    assert broken[0].errors[0].startswith(f"line {line}: ")
    field = "evaluation.comprehension[0].answer (id silent-ignore)"
    assert f'{field}: answer "x ' in broken[0].errors[0]
    assert "is not one of the choices" in broken[0].errors[0]
    assert load_protocol(out).protocol.evaluation.comprehension == []


def test_the_cli_design_validates_and_runs_at_pilot_size(
    env: dict, world: FakeAnthropic, runs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tampered.yaml"
    world.handler = designer
    done = research("design", QUESTION, "--from", str(DEU), "--out", str(out), "--yes", env=env)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in " ".join(done.stdout.split())
    assert all(is_designer(r.body) for r in world.requests)
    checked = research("validate", str(out), env=env)
    assert checked.returncode == 0, checked.stderr

    again = research("design", QUESTION, "--out", str(out), "--yes", env=env)
    assert again.returncode == 2 and "exists" in again.stderr

    world.handler = deu_world(judge_handler=agent_judge(expected_answers(out)))
    outcome = runner.start(out, pilot=True, yes=True, run_id="designed")
    assert outcome.status == "complete"


def test_each_stage_is_decided_in_a_real_terminal(
    env: dict, world: FakeAnthropic, tmp_path: Path
) -> None:
    out = tmp_path / "tampered.yaml"
    world.handler = designer
    child = spawn_tty(["design", QUESTION, "--from", str(DEU), "--out", str(out)], env)
    prompt = r"approve \(a\), reject with a note \(r\), or edit in \$EDITOR \(e\)"
    child.expect("stage: plan")
    child.expect(prompt)
    child.sendline("a")
    child.expect("note")
    child.sendline("")
    child.expect("stage: materials")
    child.expect(prompt)
    child.sendline("r")
    child.expect("what should change")
    child.sendline(NOTE)
    child.expect(r"stage: materials .* \(revision 1\)")
    child.expect("harvest-credentials")
    child.expect(prompt)
    child.sendline("a")
    child.expect("note")
    child.sendline("")
    child.expect("stage: comprehension")
    child.expect(prompt)
    child.sendline("a")
    child.expect("note")
    child.sendline("")
    child.expect("stage: analysis")
    child.expect("forecast at full size")
    child.expect(prompt)
    child.sendline("a")
    child.expect("note")
    child.sendline("ship it")
    child.expect("wrote")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    text = out.read_text()
    assert "# Stage analysis: approved by terminal (ship it)" in text
    assert "without human review" not in text
    assert REVISED_PLANT["id"] in [p.id for p in load_protocol(out).protocol.materials.plants]


def test_offline_a_small_model_drafts_a_protocol_that_loads(
    long_worker: Worker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--offline borrows the running worker and drafts in the compact form: a tiny random-weight
    model writes whatever its grammar allows, and that is a protocol the loader takes, at every
    stage (schema-valid, if not wise), written with a header saying how."""
    monkeypatch.setenv("RESEARCH_WORKER_URL", long_worker.url)
    monkeypatch.setenv("RESEARCH_RUNS_DIR", str(tmp_path / "runs"))
    out = tmp_path / "offline.yaml"
    start_design(QUESTION, example=DEU, out=out, offline=True, yes=True)
    loaded = load_protocol(out).protocol
    assert len(loaded.materials.tasks) >= 3  # the first call's two or three, and a batch's
    assert {h.test[0].contrast for h in loaded.hypotheses} <= {
        c.name for c in loaded.analysis.contrasts
    }
    assert loaded.subjects == load_protocol(DEU).protocol.subjects  # settings kept from --from
    text = out.read_text()
    assert "# Compact form (for a small model)" in text and "protocols/deu.yaml" in text
    session = next((tmp_path / "runs" / ".designs").iterdir())
    log = (session / "LOG.md").read_text()
    assert f"Using the worker at {long_worker.url}" in log
    assert "· analysis · designer · draft" in log
