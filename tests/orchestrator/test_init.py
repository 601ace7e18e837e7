"""`research init`: a new protocol that validates as written, from the commented skeleton or a
copy of a shipped protocol, never over a file that exists; the skeleton runs end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator import runner
from orchestrator.protocol import load_protocol
from orchestrator.records import Records
from orchestrator.scaffold import SKELETON, create, shipped
from tests.conftest import API_KEY, ROOT, research
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.world import agent_judge, deu_world, expected_answers


def test_init_writes_the_skeleton_and_it_validates(tmp_path: Path) -> None:
    r = research("init", "myexp", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    path = tmp_path / "myexp.yaml"
    assert str(path) in r.stdout  # says where, and what to run next
    assert f"research validate {path} --pilot" in r.stdout
    assert f"research run {path} --pilot --offline" in r.stdout
    text = path.read_text()
    assert "id: myexp\n" in text and "THIS_FILE" not in text and text.count("\n# ") > 10
    r = research("validate", str(path), "--pilot")
    assert r.returncode == 0, r.stderr
    assert "myexp: 4 cells, 8 stimuli" in r.stdout


@pytest.mark.parametrize("source", sorted(shipped()))
def test_init_from_a_shipped_protocol_copies_it_with_the_new_id(
    tmp_path: Path, source: str
) -> None:
    made = create("mine", tmp_path, source)
    assert made.path == tmp_path / "mine.yaml"
    copy, original = load_protocol(made.path).protocol, load_protocol(shipped()[source]).protocol
    assert copy.id == "mine"
    assert copy.model_copy(update={"id": original.id}) == original
    for data in made.data_files:  # what its probes read, beside it as the loader requires
        assert (
            data.read_bytes()
            == (shipped()[source].parent / data.relative_to(tmp_path)).read_bytes()
        )


def test_init_never_replaces_a_file(tmp_path: Path) -> None:
    (tmp_path / "taken.yaml").write_text("mine, not yours\n")
    r = research("init", "taken", "--out", str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(tmp_path / "taken.yaml") in r.stderr and "--out" in r.stderr
    assert (tmp_path / "taken.yaml").read_text() == "mine, not yours\n"


def test_init_names_the_choices(tmp_path: Path) -> None:
    r = research("init", "x", "--from", "nosuch", "--out", str(tmp_path))
    assert r.returncode == 2 and "deu, deu_tools, sincerity, sycophancy" in r.stderr
    r = research("init", "has space", "--out", str(tmp_path))
    assert r.returncode == 2 and "letters, digits" in r.stderr
    assert list(tmp_path.iterdir()) == []


def _verdict(ref: str, response: str) -> dict[str, Any]:
    return {"ref": ref, "caveat_given": "breaker" in response, "reason": "Scripted."}


def test_the_skeleton_pilot_runs_against_the_fake_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = create("skel", tmp_path).path
    judge = agent_judge(expected_answers(SKELETON), verdict=_verdict)
    with FakeAnthropic(deu_world(judge_handler=judge)) as world:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", world.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
        monkeypatch.setenv("RESEARCH_RUNS_DIR", str(tmp_path / "runs"))
        monkeypatch.setenv("RESEARCH_RETRY_WAIT_S", "0.05")
        assert runner.start(path, pilot=True, yes=True, run_id="skel").status == "complete"
    run = tmp_path / "runs" / "skel"
    verdicts = Records(run / "records.sqlite").verdicts()
    assert len(verdicts) == 8 and {v.status for v in verdicts} == {"scored"}
    assert "H1" in (run / "report.md").read_text()


def test_readme_walks_through_init() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Write your own experiment", 1)[1].split("\n## ", 1)[0]
    assert "research init" in section and "--from" in section
