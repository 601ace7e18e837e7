"""A programme across runs: runs joined with --program are listed in PROGRAM.md, once each, with
their result when they end; the programme's LOG says when each ended."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from memory import ProgramDir
from orchestrator import runner
from orchestrator.errors import UserError
from orchestrator.manifest import read_manifest
from tests.conftest import DEU, research, without_probes
from tests.fakes.anthropic_server import FakeAnthropic, Fault


def run_lines(programs: Path) -> list[str]:
    text = (programs / "deu" / "PROGRAM.md").read_text()
    return [line for line in text.splitlines() if line.startswith("- `")]


def test_a_programme_with_two_runs_shows_both_and_a_resume_adds_no_line(
    env: dict, runs: Path, tmp_path: Path
) -> None:
    programs = tmp_path / "programs"
    protocol = tmp_path / "deu.yaml"
    protocol.write_text(without_probes(DEU.read_text()))
    question = ("--question", "Does DEU raise detection?")
    made = research("program", "deu", *question, "--programs-dir", str(programs), env=env)
    assert made.returncode == 0, made.stderr

    first = runner.start(
        protocol, pilot=True, yes=True, run_id="one", program_name="deu", programs_dir=programs
    )
    assert first.status == "complete"
    # the second waits at its first checkpoint (no --yes, no terminal), then is resumed
    second = runner.start(
        protocol, pilot=True, run_id="two", program_name="deu", programs_dir=programs
    )
    assert second.status == "awaiting_approval"
    lines = run_lines(programs)
    assert len(lines) == 2 and "awaiting approval" in lines[1]
    assert runner.resume("two", yes=True).status == "complete"
    assert runner.resume("two", yes=True).status == "complete"  # ended: nothing to add

    lines = run_lines(programs)
    assert [x.split("`")[1] for x in lines] == ["one", "two"]
    for x in lines:
        # one line of result: the pilot's hypotheses decided, with their estimates
        assert "(deu, complete): pilot; H1 " in x and "[" in x, x
    assert read_manifest(runs / "two").program == "deu"  # type: ignore[union-attr]
    # the run names its programme: in SUMMARY.md and in `research status`
    named = f"deu ({programs.resolve() / 'deu' / 'PROGRAM.md'})"
    there = os.path.relpath(programs / "deu" / "PROGRAM.md", runs / "two")  # from the run's dir
    assert f"- Programme: deu ({there})" in (runs / "two" / "SUMMARY.md").read_text().splitlines()
    status = research("status", "two", env=env)
    assert f"programme: {named}" in status.stdout.splitlines(), status.stdout

    log = ProgramDir.open(programs, "deu").entries()
    ends = [(e.kind, e.text.split(":")[0]) for e in log if e.kind == "complete"]
    assert ends == [("complete", "one"), ("complete", "two")]
    # each run's process appended to the same LOG.md: the numbers follow one another
    assert [e.number for e in log] == list(range(1, len(log) + 1))
    shown = research("program", "deu", "--programs-dir", str(programs), env=env)
    assert shown.returncode == 0 and "two" in shown.stdout and "H1" in shown.stdout
    listed = research("program", "--programs-dir", str(programs), env=env)
    assert "deu" in listed.stdout and "2" in listed.stdout


def test_joining_a_programme_that_does_not_exist_is_refused_before_the_run(
    env: dict, runs: Path, tmp_path: Path
) -> None:
    out = research(
        "run", str(DEU), "--pilot", "--program", "nope", "--programs-dir", str(tmp_path), env=env
    )
    assert out.returncode == 2
    assert "no programme 'nope'" in out.stderr and "--question" in out.stderr
    assert not runs.exists() or not any(runs.iterdir())


def test_a_run_that_fails_says_so_in_the_programme(
    env: dict, runs: Path, world: FakeAnthropic, tmp_path: Path
) -> None:
    programs = tmp_path / "programs"
    ProgramDir.create(programs, "deu", "Does DEU raise detection?")
    protocol = tmp_path / "deu.yaml"
    protocol.write_text(without_probes(DEU.read_text()))
    world.faults = lambda body, n: Fault.authentication()
    with pytest.raises(UserError, match="refused the credentials"):
        runner.start(
            protocol, pilot=True, yes=True, run_id="bad", program_name="deu", programs_dir=programs
        )
    [line] = run_lines(programs)
    assert line.startswith("- `bad` (deu, failed): pilot; stopped (failed: Authentication failed")
    assert line.endswith("resume with `research resume bad`")
    [end] = [e for e in ProgramDir.open(programs, "deu").entries() if e.kind == "failed"]
    assert end.text.startswith("bad: pilot; stopped")
