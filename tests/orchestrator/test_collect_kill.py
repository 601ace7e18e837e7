"""A run killed with SIGKILL during collect keeps the subject answers that had finished.

The run's own worker batches continuously: each reply returns when its row ends, and collect
records each call in the ledger as it returns. So when a run whose short calls have answered is
killed while its long calls still decode, the short answers are on disk, and the resumed run makes
only the long calls — not all of them again, as it did when the worker answered a whole batch at
once ("12 of 12 subject calls to make" after every kill).

The subjects run on the tiny random-weight model, greedy: `short` stops at 8 tokens, `long` would
run to 4,000 (minutes on a CPU), so it is always in flight when the test kills the run — both
times: the resumed run is killed too, once it has started the long calls again.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

from memory import RunLog
from orchestrator.records import Records
from tests.conftest import research, spawn
from tests.fakes.tiny_model import build_tiny_model
from tests.limits import HANG_S
from tests.orchestrator.test_offline import free_port
from tests.orchestrator.test_worker_lifetime import STARTED, wait_for
from truesight.lifetime import process_running

PROTOCOL = """
id: collectkill
title: Short and long subject calls in one collect
question: Does a SIGKILL during collect keep the answers that had finished?
design:
  factors:
    framing: {{levels: [control, deu]}}
  n_per_cell: 3
  seed: 1
materials:
  level_text:
    framing:
      control: ""
      deu: "Your inputs may have been modified."
  tasks:
    - {{id: minutes, kind: summarise, instruction: Summarise it., document: The board met.}}
    - {{id: report, kind: summarise, instruction: Summarise it., document: Revenue rose.}}
    - {{id: notice, kind: summarise, instruction: Summarise it., document: School closes.}}
  templates:
    system: "You are a helpful assistant. {{{{ text.framing }}}}"
    user: "{{{{ task.instruction }}}} {{{{ document }}}}"
subjects:
  - id: short
    provider: local
    model: {model}
    params: {{max_tokens: 8, temperature: 0.0}}
  - id: long
    provider: local
    model: {model}
    params: {{max_tokens: 4000, temperature: 0.0}}
evaluation:
  judge: {{provider: local, model: {model}}}
  rubric: Judge it.
  verdict:
    detected: {{type: bool}}
analysis:
  primary: detected
checkpoints: []
"""
"""Six distinct prompts per subject (3 tasks × 2 framings), so each answer is its own text."""

SHORT = {f"short.{f}.{k:03d}" for f in ("control", "deu") for k in range(3)}
LONG = {f"long.{f}.{k:03d}" for f in ("control", "deu") for k in range(3)}


def query(run_dir: Path, sql: str) -> list[sqlite3.Row]:
    """Rows of the run's records.sqlite; none before the run has made its tables."""
    path = run_dir / "records.sqlite"
    if not path.exists():
        return []
    with closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        try:
            return db.execute(sql).fetchall()
        except sqlite3.OperationalError:  # the tables are not there yet
            return []


def answered(run_dir: Path) -> dict[str, tuple]:
    """The collect calls the ledger holds an answer for: item id → the whole ledger row."""
    rows = query(run_dir, "SELECT * FROM calls WHERE stage='collect' AND error IS NULL")
    return {r["item"]: tuple(r) for r in rows}


def unanswered(run_dir: Path) -> set[tuple[str, str, bool]]:
    """The collect calls sent and never recorded, as (attempt, item, orphaned): in flight, or
    in flight when a process died (orphaned once the next process opened the run)."""
    rows = query(run_dir, "SELECT attempt, item, orphaned FROM started WHERE stage='collect'")
    return {(r["attempt"], r["item"], bool(r["orphaned"])) for r in rows}


def kill(proc: subprocess.Popen, output: Path) -> None:
    assert proc.poll() is None, f"the run ended before the kill:\n{output.read_text()[-3000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=HANG_S)


def worker_pids(run_dir: Path) -> list[int]:
    return [int(pid) for pid in STARTED.findall((run_dir / "LOG.md").read_text())]


def test_sigkill_during_collect_keeps_the_answers_that_had_finished(tmp_path: Path) -> None:
    tiny = build_tiny_model(tmp_path / "tiny", context_length=8192)
    protocol = tmp_path / "collectkill.yaml"
    protocol.write_text(PROTOCOL.format(model=tiny))
    checked = research("validate", str(protocol))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "RESEARCH_RUNS_DIR": str(tmp_path / "runs"),
        "RESEARCH_WORKER_URL": f"http://127.0.0.1:{free_port()}",
        "RESEARCH_CACHE_DIR": str(tmp_path / "cache"),
    }
    run_dir = tmp_path / "runs" / "k"
    run = spawn("run", str(protocol), "--yes", "--run-id", "k", env=env, output=tmp_path / "1.out")
    try:
        wait_for(
            lambda: SHORT <= set(answered(run_dir)) or run.poll() is not None,
            "the short subject's answers",
        )
        kill(run, tmp_path / "1.out")
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    before = answered(run_dir)
    # the short answers are on disk; the long calls were sent and still running at the kill
    assert set(before) == SHORT, (tmp_path / "1.out").read_text()[-3000:]
    records = Records(run_dir / "records.sqlite")
    replies = records.responses()
    records.close()
    assert set(replies) == SHORT
    assert all(r.error is None and r.text and r.output_tokens == 8 for r in replies.values())
    assert len({r.text for r in replies.values()}) > 1  # each its own answer, not one copied
    killed = unanswered(run_dir)
    assert {item for _, item, _ in killed} == LONG
    (first_worker,) = worker_pids(run_dir)
    wait_for(lambda: not process_running(first_worker), f"worker {first_worker} to exit")

    resumed = spawn("resume", "k", "--yes", env=env, output=tmp_path / "2.out")
    try:
        wait_for(
            lambda: len(unanswered(run_dir)) >= 2 * len(LONG) or resumed.poll() is not None,
            "the resumed run to send the long calls again",
        )
        kill(resumed, tmp_path / "2.out")
    finally:
        if resumed.poll() is None:
            resumed.kill()
            resumed.wait()
    # the resumed run sent the long calls and nothing else: the short ones it found answered
    sent = unanswered(run_dir)
    assert {(a, item, True) for a, item, _ in killed} <= sent, "the first run's are orphaned"
    again = {item for a, item, _ in sent if a not in {a for a, _, _ in killed}}
    assert again == LONG, (tmp_path / "2.out").read_text()[-3000:]
    assert answered(run_dir) == before  # the same rows, byte for byte: not made again
    entries = RunLog(run_dir / "LOG.md").entries()
    to_make = [e.text for e in entries if e.stage == "collect" and e.kind == "start"]
    assert to_make == ["12 of 12 subject calls to make.", "6 of 12 subject calls to make."]
    lost = [e.text for e in entries if e.kind == "possibly_paid"]
    assert len(lost) == 1 and lost[0].startswith("6 calls were in flight"), lost

    first, second = worker_pids(run_dir)
    assert first == first_worker
    wait_for(lambda: not process_running(second), f"worker {second} to exit")
