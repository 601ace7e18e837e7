"""Protocol loading: the shipped protocols are valid, and every broken one says where and why."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.cli.app import main
from orchestrator.errors import ProtocolError
from orchestrator.protocol import load_protocol
from orchestrator.protocol.stimuli import build_stimuli, cells
from tests.conftest import DEU, SINCERITY, research
from tests.orchestrator.broken_protocols import (
    CASES,
    CONSTRAINT_CASES,
    DESIGN_CASES,
    PROBE_CASES,
    REFERENCE_CASES,
    FixCase,
)

BASE = DEU.read_text()


def test_deu_encodes_the_experiment() -> None:
    p = load_protocol(DEU).protocol
    assert {n: f.levels for n, f in p.design.factors.items()} == {
        "framing": ["control", "deu"],
        "planted": ["none", "planted"],
    }
    assert len(p.subjects) == 2
    assert len(p.materials.tasks) >= 20
    assert len({t.kind for t in p.materials.tasks}) >= 5
    assert len({pl.kind for pl in p.materials.plants}) >= 5
    named = {"detected", "complied", "questioned_legitimacy", "reasoning_style", "evidence"}
    assert set(p.evaluation.verdict) >= named
    assert p.evaluation.verdict["reasoning_style"].values == ["checklist", "experiential", "none"]
    full = build_stimuli(p, pilot=False)
    assert len(full) == 400  # 2 models × 2 × 2 × 50
    assert p.evaluation.evaluators * p.evaluation.batch_size == len(full)
    assert len(build_stimuli(p, pilot=True)) < len(full)


def test_second_protocol_has_another_shape() -> None:
    p = load_protocol(SINCERITY).protocol
    assert len(cells(p)) == 6  # 2 × 3 levels, one subject
    assert not p.materials.plants


def test_stimuli_are_deterministic_and_plants_only_where_planted() -> None:
    p = load_protocol(DEU).protocol
    a, b = build_stimuli(p, pilot=True), build_stimuli(p, pilot=True)
    assert a == b
    texts = {pl.id: pl.text.strip() for pl in p.materials.plants}
    for s in a:
        levels = dict(s.cell.levels)
        assert (s.plant_id is not None) == (levels["planted"] == "planted")
        if s.plant_id:
            assert texts[s.plant_id] in s.user
        notice = p.materials.level_text["framing"]["deu"].strip()
        assert (notice in s.system) == (levels["framing"] == "deu")
        assert notice not in s.blind_user
    # the same task sequence in every cell: cells differ only by their levels
    by_cell: dict[str, list[str]] = {}
    for s in a:
        by_cell.setdefault(s.cell.key, []).append(s.task_id)
    assert len({tuple(v) for v in by_cell.values()}) == 1


def test_task_fields_reach_templates_and_evaluators_see_them_as_the_subject_did(
    tmp_path: Path,
) -> None:
    """Extra task data lives in `fields:`, not stuffed into the document; templates read it as
    `fields.<name>`, and the user message evaluators see has it as the subject saw it (task
    data, the same in every cell: nothing of the condition)."""
    path = mutate(
        tmp_path,
        "    - id: sum-board-minutes\n",
        "    - id: sum-board-minutes\n      fields: {audience: trustees, words: 150}\n",
    )
    old = '    user: "{{ task.instruction }}'
    guarded = "{% if fields.audience is defined %} For {{ fields.audience }}.{% endif %}"
    path.write_text(path.read_text().replace(old, old + guarded, 1))
    p = load_protocol(path).protocol
    assert p.materials.tasks[0].fields == {"audience": "trustees", "words": 150}
    assert p.materials.tasks[1].fields == {}
    stimuli = [s for s in build_stimuli(p, pilot=False) if s.task_id == "sum-board-minutes"]
    assert stimuli
    for s in stimuli:
        assert "For trustees." in s.user
        assert "For trustees." in s.blind_user


def test_a_field_some_tasks_lack_is_refused_naming_the_task(tmp_path: Path) -> None:
    old = '    user: "{{ task.instruction }}'
    path = mutate(tmp_path, old, old + " For {{ fields.audience }}.")
    with pytest.raises(ProtocolError) as e:
        load_protocol(path)
    assert e.value.field == "materials.templates.user"
    assert "with task 'sum-board-minutes'" in e.value.message
    assert "give every task the fields the templates use" in e.value.message


def mutate(tmp_path: Path, old: str, new: str, count: int = 1) -> Path:
    assert old in BASE, old
    path = tmp_path / "deu.yaml"
    path.write_text(BASE.replace(old, new, count))
    shutil.copytree(DEU.parent / "data", tmp_path / "data", dirs_exist_ok=True)
    return path


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize("name,old,new,field,fragment", CASES, ids=[c.name for c in CASES])
def test_protocol_errors_name_file_line_and_field(
    tmp_path: Path,
    name: str,
    old: str,
    new: str,
    field: str,
    fragment: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = mutate(tmp_path, old, new)
    with pytest.raises(ProtocolError) as e:
        load_protocol(path)
    err = e.value
    assert err.field == field
    assert fragment in err.message
    assert err.line is not None and 1 <= err.line <= path.read_text().count("\n") + 1
    assert str(err).startswith(f"{path}:{err.line}: {field}: ")
    # and `research validate` says the same, with exit code 2 and no traceback
    monkeypatch.setattr(sys, "argv", ["research", "validate", str(path)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    printed = " ".join(capsys.readouterr().err.split())
    assert f"{path}:{err.line}: {field}:" in printed and "Traceback" not in printed


@pytest.mark.parametrize(
    "case", DESIGN_CASES + CONSTRAINT_CASES, ids=[c.name for c in DESIGN_CASES + CONSTRAINT_CASES]
)
def test_designs_that_cannot_work_are_refused_with_a_fix(
    tmp_path: Path,
    case: FixCase,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A design that would run but cannot answer anything is refused at its line, with what is
    wrong in words (never a raw regex) and what to write instead."""
    path = mutate(tmp_path, case.old, case.new)
    with pytest.raises(ProtocolError) as e:
        load_protocol(path)
    err = e.value
    assert (err.field, err.line) == (case.field, line_of(path.read_text(), case.at)), err.report()
    assert case.fragment in err.message and case.fix in err.message, err.message
    assert "[A-Za-z0-9]" not in err.message
    monkeypatch.setattr(sys, "argv", ["research", "validate", str(path)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    printed = " ".join(capsys.readouterr().err.split())
    assert f"{path}:{err.line}: {case.field}:" in printed and "Traceback" not in printed
    assert " ".join(case.fix.split()) in printed


def test_error_line_is_the_line_of_the_field(tmp_path: Path) -> None:
    path = mutate(tmp_path, "n_per_cell: 50", "n_per_cell: -3")
    with pytest.raises(ProtocolError) as e:
        load_protocol(path)
    assert e.value.line == line_of(path.read_text(), "n_per_cell: -3")


def test_template_syntax_error_points_into_the_template(tmp_path: Path) -> None:
    path = mutate(tmp_path, "{{ document }}", "{{ document }")
    with pytest.raises(ProtocolError) as e:
        load_protocol(path)
    assert e.value.line == line_of(path.read_text(), "{{ document }")


def test_syntax_error_in_a_block_template_names_its_line(tmp_path: Path) -> None:
    old = '    user: "{{ task.instruction }}\\n\\n<document>\\n{{ document }}\\n</document>"'
    new = "    user: |\n      {{ task.instruction }}\n\n      {{ document | upper }\n"
    path = mutate(tmp_path, old, new)
    with pytest.raises(ProtocolError) as e:
        load_protocol(path)
    assert e.value.line == line_of(path.read_text(), "{{ document | upper }")


def test_duplicate_task_id(tmp_path: Path) -> None:
    first = yaml.safe_load(BASE)["materials"]["tasks"][0]["id"]
    second = yaml.safe_load(BASE)["materials"]["tasks"][1]["id"]
    path = mutate(tmp_path, f"id: {second}\n", f"id: {first}\n")
    with pytest.raises(ProtocolError) as e:
        load_protocol(path)
    assert e.value.field == "materials.tasks[1].id"
    assert "duplicate id" in e.value.message
    text = path.read_text()
    second_at = text.index(f"id: {first}\n", text.index(f"id: {first}\n") + 1)
    assert e.value.line == text[:second_at].count("\n") + 1


def test_duplicate_key(tmp_path: Path) -> None:
    path = mutate(tmp_path, "  seed: 20260214\n", "  seed: 20260214\n  seed: 1\n")
    with pytest.raises(ProtocolError) as e:
        load_protocol(path)
    assert e.value.field == "design.seed" and "twice" in e.value.message


@pytest.mark.parametrize(
    "content,fragment",
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("   \n# only a comment\n", "no fields", id="comment-only"),
        pytest.param("id: [unclosed\n", "YAML syntax", id="yaml-syntax"),
        pytest.param("- a list\n", "mapping", id="not-a-mapping"),
    ],
)
def test_unloadable_files(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(content)
    with pytest.raises(ProtocolError) as e:
        load_protocol(path)
    assert fragment in str(e.value)


def test_validate_cli_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    path = mutate(tmp_path, "n_per_cell: 50", "n_per_cell: 0")
    result = research("validate", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    line = line_of(path.read_text(), "n_per_cell: 0")
    assert re.search(rf"{re.escape(str(path))}:{line}: design\.n_per_cell: ", result.stderr)


def test_validate_cli_previews_cells() -> None:
    result = research("validate", str(DEU), "--pilot")
    assert result.returncode == 0, result.stderr
    assert "8 cells, 24 stimuli" in result.stdout
    assert "claude-haiku.deu.planted" in result.stdout


@pytest.mark.parametrize(
    "name,old,new,field,fragment", PROBE_CASES, ids=[c.name for c in PROBE_CASES]
)
def test_probe_training_errors_name_the_field(
    tmp_path: Path, name: str, old: str, new: str, field: str, fragment: str
) -> None:
    path = mutate(tmp_path, old, new)
    with pytest.raises(ProtocolError) as e:
        load_protocol(path)
    assert e.value.field == field and fragment in e.value.message, str(e.value)
    assert e.value.line is not None


def test_linear_needs_a_trained_probe(tmp_path: Path) -> None:
    start = BASE.index("  train:\n    deception:")
    end = BASE.index("\n  params:", start)
    path = tmp_path / "deu.yaml"
    path.write_text(BASE[:start] + BASE[end + 1 :])
    with pytest.raises(ProtocolError) as e:
        load_protocol(path)
    assert e.value.field == "probes.run[3]" and "probes.train" in e.value.message
    assert e.value.line == line_of(path.read_text(), "run: [surprisal")


def test_data_files_are_listed_for_freezing() -> None:
    loaded = load_protocol(DEU)
    assert loaded.data_files() == [
        "data/instructed_pairs.jsonl",
        "data/ood_deception.jsonl",
        "data/ood_performative.jsonl",
        "data/sincere_performative.jsonl",
    ]


def test_a_missing_transfer_set_is_refused_at_its_line(tmp_path: Path) -> None:
    path = mutate(tmp_path, "transfer: data/ood_performative", "transfer: data/ood_gone")
    with pytest.raises(ProtocolError) as e:
        load_protocol(path)
    assert e.value.field == "probes.train.performative.transfer"
    assert e.value.line == line_of(path.read_text(), "transfer: data/ood_gone")
    assert str(e.value).startswith(f"{path}:{e.value.line}: probes.train.performative.transfer")


def test_a_run_freezes_its_data_files_and_refuses_edits(tmp_path: Path) -> None:
    from orchestrator.errors import UserError
    from orchestrator.rundir import RunDir

    loaded = load_protocol(DEU)
    run = RunDir.create(
        tmp_path / "runs",
        loaded,
        run_id="frozen",
        pilot=True,
        offline=False,
        local_model=None,
        models=[],
    )
    frozen = run.path("data", "instructed_pairs.jsonl")
    assert frozen.read_bytes() == (DEU.parent / "data" / "instructed_pairs.jsonl").read_bytes()
    assert run.loaded.data_files() == loaded.data_files()  # the frozen copy validates
    run.close()
    frozen.write_text(frozen.read_text().replace("Canberra", "Sydney", 1))
    with pytest.raises(UserError, match="instructed_pairs.jsonl was edited after the run started"):
        RunDir.open(tmp_path / "runs", "frozen")


@pytest.mark.parametrize(
    "name,old,new,field,fragment", REFERENCE_CASES, ids=[c.name for c in REFERENCE_CASES]
)
def test_analysis_references_are_checked(
    tmp_path: Path, name: str, old: str, new: str, field: str, fragment: str
) -> None:
    """The pre-registered models and forecast rates name factors, levels, subjects and
    outcomes that must exist: a typo is an error at its line, before anything is spent."""
    path = mutate(tmp_path, old, new)
    with pytest.raises(ProtocolError) as e:
        load_protocol(path)
    assert e.value.field == field and fragment in e.value.message, e.value.report()
    assert e.value.line is not None
