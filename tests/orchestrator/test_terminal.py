"""Checkpoint approval in a real terminal (a pty): the panel, then approve / reject / abort."""

from __future__ import annotations

import sys
from pathlib import Path

import pexpect

from memory import RunLog
from tests.conftest import DEU, ROOT


def spawn_tty(args: list[str], env: dict) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "orchestrator.cli.app", *args],
        cwd=str(ROOT),
        env={**env, "COLUMNS": "120", "TERM": "xterm"},
        encoding="utf-8",
        timeout=60,
        dimensions=(50, 120),
    )


def test_terminal_checkpoints_approve_then_reject(env: dict, runs: Path) -> None:
    child = spawn_tty(["run", str(DEU), "--pilot", "--run-id", "tty"], env)
    child.expect("checkpoint: design")
    child.expect("next")
    child.expect("collect: 12 calls to claude-sonnet-4-6")  # the forecast, before any spend
    child.expect(r"approve \(a\), reject with a reason \(r\), or abort for now \(b\)")
    child.sendline("a")
    child.expect("note")
    child.sendline("stimuli look right")
    child.expect("checkpoint: evaluate")
    child.expect("agreement on detected: between evaluators 100%")
    # 24 subject calls + 8 evaluators × 4 turns (read, check, get_batch, submit)
    child.expect("spent so far: 56 calls")
    child.expect(r"approve \(a\)")
    child.sendline("r")
    child.expect("reason")
    child.sendline("judge misread the rubric")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    entries = RunLog(runs / "tty" / "LOG.md").entries()
    decisions = [(e.stage, e.kind, e.actor) for e in entries if e.kind in ("approve", "reject")]
    assert decisions == [("design", "approve", "terminal"), ("evaluate", "reject", "terminal")]
    assert "judge misread the rubric" in (runs / "tty" / "SUMMARY.md").read_text()
    assert not (runs / "tty" / "report.md").exists()


def test_terminal_abort_leaves_the_run_waiting(env: dict, runs: Path) -> None:
    child = spawn_tty(["run", str(DEU), "--pilot", "--run-id", "abort"], env)
    child.expect(r"approve \(a\)")
    child.sendline("b")
    child.expect("research approve abort")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "awaiting approval at design" in (runs / "abort" / "SUMMARY.md").read_text()
