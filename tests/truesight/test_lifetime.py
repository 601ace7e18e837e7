"""A worker started with `--parent-pid` stops once that process is gone; one without it does not.

The watched process here is not the worker's parent, so the kernel's parent-death signal cannot
stand in for the watchdog: what stops the worker is its own watch of the pid. The watched process
is killed and left unreaped (a zombie, as a SIGKILLed run is until whoever started it waits).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.limits import HANG_S
from tests.truesight.workers import start_worker, stop_worker
from truesight.lifetime import parent_gone, process_running


def wait_until_gone(proc: subprocess.Popen) -> int:
    """Wait (bounded by HANG_S, a guard against a hang) for `proc` to exit; its exit code."""
    return proc.wait(timeout=HANG_S)


def test_a_worker_stops_when_the_process_it_watches_dies(model_dir: Path, tmp_path: Path) -> None:
    watched = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    worker = start_worker(model_dir, tmp_path / "w.log", "--parent-pid", str(watched.pid))
    try:
        assert worker.health()["parent_pid"] == watched.pid
        assert worker.proc.poll() is None  # alive while the watched process is
        watched.send_signal(signal.SIGKILL)
        # not reaped: a zombie has a pid yet is gone
        assert wait_until_gone(worker.proc) == 0
        assert f"(pid {watched.pid}) has ended; stopping" in worker.stderr()
    finally:
        watched.wait()
        if worker.proc.poll() is None:
            stop_worker(worker)


def test_a_worker_whose_parent_is_already_gone_exits_at_once(
    model_dir: Path, tmp_path: Path
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    log = tmp_path / "w.log"
    cmd = [sys.executable, "-m", "truesight", "--model", str(model_dir), "--port", "0"]
    with log.open("w") as out:
        proc = subprocess.run(
            [*cmd, "--parent-pid", str(dead.pid)], stdout=out, stderr=out, timeout=HANG_S
        )
    assert proc.returncode == 0
    assert f"parent {dead.pid} is gone" in log.read_text()
    assert "serving" not in log.read_text()


def test_parent_gone_sees_a_zombie_and_a_reparented_child() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # it exited; left unreaped
    assert not process_running(child.pid)  # a zombie
    assert parent_gone(child.pid, direct=False)
    child.wait()
    assert not parent_gone(os.getpid(), direct=False)
    # a direct child whose parent pid is no longer its parent was reparented: the parent died
    assert parent_gone(os.getpid(), direct=True)
    assert not parent_gone(os.getppid(), direct=True)
