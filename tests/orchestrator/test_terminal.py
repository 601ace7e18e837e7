"""Checkpoint approval in a real terminal (a pty): the panel, then approve / reject / abort."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pexpect

from memory import RunLog
from orchestrator.cli.ui import console, show_panel
from orchestrator.panel import Panel
from tests.conftest import DEU, ROOT, copy_run
from tests.limits import HANG_S


def spawn_tty(args: list[str], env: dict) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "orchestrator.cli.app", *args],
        cwd=str(ROOT),
        env={**env, "COLUMNS": "120", "TERM": "xterm"},
        encoding="utf-8",
        timeout=HANG_S,  # per expect: a guard against a hang, not a speed
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
    assert child.exitstatus == 1  # rejected: only a complete run exits 0
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
    assert child.exitstatus == 3  # waiting at a checkpoint for a decision
    assert "awaiting approval at design" in (runs / "abort" / "SUMMARY.md").read_text()


def test_terminal_amendment_shows_the_diff_and_asks(
    env: dict, runs: Path, completed_pilot: Path, tmp_path: Path
) -> None:
    run_dir = copy_run(completed_pilot, runs, "amend-tty")
    text = (run_dir / "protocol.yaml").read_text()
    shutil.copytree(run_dir / "data", tmp_path / "data")
    amended = tmp_path / "amended.yaml"
    amended.write_text(text.replace("correction: holm", "correction: bonferroni", 1))
    child = spawn_tty(["amend", "amend-tty", str(amended), "--note", "one family, FWER"], env)
    child.expect("amendment 1 to the pre-registered analysis")
    child.expect(r"\+\s+correction: bonferroni")  # the diff, in the panel
    child.expect("rebuilt from records")
    child.expect(r"approve \(a\), reject with a reason \(r\), or abort for now \(b\)")
    child.sendline("a")
    child.expect("note")
    child.sendline("agreed")
    child.expect("amendment 1 approved")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert (run_dir / "protocol.yaml").read_text() == amended.read_text()
    assert "one family, FWER" in (run_dir / "report.md").read_text()


def test_the_panel_shows_calls_possibly_paid_only_when_there_are_some() -> None:
    spent = {"calls": 40, "input_tokens": 9000, "output_tokens": 700, "cost_usd": 0.1}
    shown = []
    for possibly in (0, 16):
        usage = {**spent, "unpriced": 0, "possibly_paid": possibly, "possibly_paid_usd": 0.0208}
        with console.capture() as out:
            show_panel(Panel("r", "evaluate", [], [], usage, "", {}))
        unboxed = re.sub("[│╭╮╰╯─]", " ", out.get())  # the panel's border and wrapped lines
        shown.append(" ".join(unboxed.split()))
    assert "spent so far: 40 calls" in shown[0] and "possibly paid" not in shown[0]
    said = "16 more possibly paid (in flight when a process was killed or interrupted, never "
    assert said in shown[1] and "recorded): ≈ $0.0208" in shown[1]
