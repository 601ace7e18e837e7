"""LOG.md, SUMMARY.md, notes, run context and git history behave as a resuming process needs."""

from __future__ import annotations

import threading
from pathlib import Path

from memory import (
    RunHistory,
    RunLog,
    Summary,
    append_note,
    read_notes,
    run_context,
    write_summary,
)
from memory.log import HEADER


def test_log_numbers_entries_and_survives_reopening(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "LOG.md")
    assert log.append("design", "orchestrator", "stage_done", "24 items") == 1
    assert log.append("design", "alice", "approve", "looks right\n\nsecond paragraph") == 2
    again = RunLog(tmp_path / "LOG.md")  # a new process
    assert again.last_number == 2
    assert again.append("collect", "orchestrator", "start", "go") == 3
    entries = again.entries()
    assert [e.number for e in entries] == [1, 2, 3]
    assert entries[1].actor == "alice" and entries[1].text == "looks right\n\nsecond paragraph"


def test_log_appends_from_many_threads_without_tearing(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "LOG.md")
    text = "x" * 5000

    def worker(k: int) -> None:
        for i in range(25):
            log.append("evaluate", f"evaluator-{k}", "batch_done", f"{k}-{i} {text}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = RunLog(tmp_path / "LOG.md").entries()
    assert [e.number for e in entries] == list(range(1, 201))
    assert all(e.text.endswith(text) for e in entries)
    assert len(HEADER.findall((tmp_path / "LOG.md").read_text())) == 200


def test_summary_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "SUMMARY.md"
    s = Summary(
        run_id="r1",
        protocol_id="deu",
        protocol_title="DEU",
        protocol_sha256="ab" * 32,
        status="running",
        size="pilot",
        stages=[],
        decisions=[],
        flags=[],
        numbers={"calls": "3"},
        next_step="Continue with `research resume r1`.",
        last_log_entry=7,
    )
    write_summary(path, s)
    text = path.read_text()
    assert "Reflects LOG entries up to: 7" in text and "calls: 3" in text
    assert [p.name for p in tmp_path.iterdir()] == ["SUMMARY.md"]  # no temp file left behind


def test_notes_and_context_come_from_files(tmp_path: Path) -> None:
    append_note(tmp_path, "evaluator-3", "judged 20 of 50; R07 is ambiguous")
    assert "R07 is ambiguous" in read_notes(tmp_path, "evaluator-3")
    assert read_notes(tmp_path, "evaluator-4") == ""
    (tmp_path / "SUMMARY.md").write_text("# SUMMARY — r1\n\nstatus: running\n")
    log = RunLog(tmp_path / "LOG.md")
    for i in range(30):
        log.append("collect", "orchestrator", "note", f"event {i}")
    ctx = run_context(tmp_path, log_tail=5)
    assert ctx.startswith("# SUMMARY — r1")
    assert "event 29" in ctx and "event 25" in ctx and "event 24" not in ctx


def test_history_commits_text_files_only(tmp_path: Path) -> None:
    h = RunHistory(tmp_path)
    (tmp_path / "LOG.md").write_text("one\n")
    (tmp_path / "records.sqlite").write_bytes(b"\0binary")
    (tmp_path / ".lock").write_text("123")
    assert h.commit("design: done") is not None
    assert h.commit("nothing changed") is None
    (tmp_path / "LOG.md").write_text("one\ntwo\n")
    h.commit("collect: done")
    assert h.messages() == ["design: done", "collect: done"]
    tracked = set(h.repo.git.ls_files().split())
    assert tracked == {".gitignore", "LOG.md"}
    # a process killed mid-commit leaves index.lock; the next opener clears it
    (tmp_path / ".git" / "index.lock").write_text("")
    (tmp_path / "LOG.md").write_text("one\ntwo\nthree\n")
    assert RunHistory(tmp_path).commit("screen: done") is not None
