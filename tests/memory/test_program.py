"""A programme's files: PROGRAM.md lists each run once, LOG.md only grows."""

from __future__ import annotations

import json
import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from memory import OpenQuestion, ProgramDir, RunLine, list_programs


def line(run_id: str, status: str = "complete", result: str = "H1 supported") -> RunLine:
    return RunLine(
        run_id=run_id, protocol_id="deu", status=status, result=result, updated="2026-12-07"
    )


def test_a_programme_shows_each_run_once_with_its_latest_result(tmp_path: Path) -> None:
    program = ProgramDir.create(tmp_path, "deu", "Does DEU raise detection?")
    assert program.record_run(line("pilot-1", "failed", "stopped in collect: the API failed"))
    assert program.record_run(line("pilot-2"))
    # the first run resumed and finished: its line is replaced, not added
    assert program.record_run(line("pilot-1", "complete", "H1 supported +12.0 [+2.0, +22.0]"))
    assert not program.record_run(line("pilot-1", "complete", "H1 supported +12.0 [+2.0, +22.0]"))

    text = (tmp_path / "deu" / "PROGRAM.md").read_text()
    assert "Question: Does DEU raise detection?" in text
    runs = [x for x in text.splitlines() if x.startswith("- `pilot")]
    assert runs == [
        "- `pilot-1` (deu, complete): H1 supported +12.0 [+2.0, +22.0]",
        "- `pilot-2` (deu, complete): H1 supported",
    ]
    # a new process sees the same programme
    again = ProgramDir.open(tmp_path, "deu")
    assert [r.run_id for r in again.state().runs] == ["pilot-1", "pilot-2"]


def test_the_log_is_appended_and_open_questions_are_listed(tmp_path: Path) -> None:
    program = ProgramDir.create(tmp_path, "deu", "Q?")
    program.append("next", "human", "picked", "Follow-up 2: deu-system-prompt")
    program.add_open_question("Does the effect hold on a larger model?")
    program.add_open_question("Does the effect hold on a larger model?")
    entries = ProgramDir.open(tmp_path, "deu").entries()
    assert [(e.number, e.kind) for e in entries] == [(1, "created"), (2, "picked")]
    assert "programme" in (tmp_path / "deu" / "LOG.md").read_text().splitlines()[2]
    text = (tmp_path / "deu" / "PROGRAM.md").read_text()
    assert text.count("- Does the effect hold on a larger model?") == 1
    assert [p.name for p in list_programs(tmp_path)] == ["deu"]


def test_creating_twice_or_opening_none_is_refused(tmp_path: Path) -> None:
    ProgramDir.create(tmp_path, "deu", "Q?")
    with pytest.raises(FileExistsError):
        ProgramDir.create(tmp_path, "deu", "Q again?")
    with pytest.raises(FileNotFoundError):
        ProgramDir.open(tmp_path, "other")
    with pytest.raises(ValueError):
        ProgramDir.create(tmp_path, "x", "  ")
    with pytest.raises(ValueError):
        ProgramDir.create(tmp_path, "../up", "Q?")


def _record_many(root: Path, tag: str, n: int, start: Barrier) -> None:
    """One run's process ending again and again: its line, then its LOG entry."""
    program = ProgramDir.open(root, "deu")
    start.wait()
    for i in range(n):
        program.record_run(line(f"{tag}-{i}"))
        program.append("run", "orchestrator", "complete", f"{tag}-{i}: H1 supported")


def test_runs_ending_at_once_in_two_processes_lose_nothing(tmp_path: Path) -> None:
    ProgramDir.create(tmp_path, "deu", "Q?")
    fork = multiprocessing.get_context("fork")
    start = fork.Barrier(2)  # both begin together, so their writes do overlap
    n = 40
    workers = [fork.Process(target=_record_many, args=(tmp_path, t, n, start)) for t in "ab"]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]

    program = ProgramDir.open(tmp_path, "deu")
    expected = {f"{t}-{i}" for t in "ab" for i in range(n)}
    assert {r.run_id for r in program.state().runs} == expected
    text = (tmp_path / "deu" / "PROGRAM.md").read_text()
    assert {x.split("`")[1] for x in text.splitlines() if x.startswith("- `")} == expected
    entries = program.entries()
    assert [e.number for e in entries] == list(range(1, 2 * n + 2))
    logged = {e.text.split(":")[0] for e in entries if e.kind == "complete"}
    assert logged == expected


def test_a_followup_picked_later_is_no_longer_open(tmp_path: Path) -> None:
    program = ProgramDir.create(tmp_path, "deu", "Q?")
    program.add_open_question("Does it hold on a larger model?")
    proposed = [
        OpenQuestion(title=t, reason="why", run_id="pilot-1", followup_id=t, left="none picked")
        for t in ("deu-opus", "deu-notice")
    ]
    assert program.note_questions(proposed)
    assert not program.note_questions(proposed)  # replayed: nothing twice
    assert program.note_questions(proposed, picked="deu-opus")
    state = ProgramDir.open(tmp_path, "deu").state()
    assert [q.title for q in state.still_open] == ["Does it hold on a larger model?", "deu-notice"]
    # history keeps the picked one, and a later proposal of it does not reopen it
    assert [q.title for q in state.open_questions if q.picked] == ["deu-opus"]
    assert not program.note_questions(proposed)


def test_a_programme_written_with_plain_text_questions_still_opens(tmp_path: Path) -> None:
    program = ProgramDir.create(tmp_path, "deu", "Q?")
    data = json.loads((program.root / "program.json").read_text())
    (program.root / "program.json").write_text(json.dumps(data | {"open_questions": ["Why?"]}))
    assert [q.title for q in program.state().still_open] == ["Why?"]
