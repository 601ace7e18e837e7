"""Which worker a run used, and how long it lives: one the run started dies with the run, even
a run killed with SIGKILL (no `finally` runs then); a shared one (`research worker`) outlives
every run that used it. LOG.md says which it was."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import DEU, spawn
from tests.fakes.tiny_model import build_tiny_model
from tests.limits import HANG_S
from tests.orchestrator.test_offline import free_port
from tests.truesight.workers import Worker, start_worker, stop_worker
from truesight.lifetime import process_running

STARTED = re.compile(r"Started the local worker \(pid (\d+)\)")


def wait_for(condition, what: str) -> None:
    """Poll `condition` until it holds; HANG_S is a guard against a hang, not a speed limit."""
    guard = time.monotonic() + HANG_S
    while not condition():
        assert time.monotonic() < guard, f"gave up waiting: {what}"
        time.sleep(0.1)


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_sigkill_of_a_run_leaves_no_orphan_worker(tmp_path: Path) -> None:
    tiny = build_tiny_model(tmp_path / "tiny", context_length=8192)
    url = f"http://127.0.0.1:{free_port()}"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "RESEARCH_RUNS_DIR": str(tmp_path / "runs"),
        "RESEARCH_LOCAL_MODEL": str(tiny),
        "RESEARCH_WORKER_URL": url,
        "RESEARCH_CACHE_DIR": str(tmp_path / "cache"),
    }
    args = ["run", str(DEU), "--pilot", "--offline", "--yes", "--run-id", "k"]
    run = spawn(*args, env=env, output=tmp_path / "run.out")
    log = tmp_path / "runs" / "k" / "LOG.md"
    try:
        wait_for(lambda: log.exists() and STARTED.search(log.read_text()), "the worker started")
        wait_for(lambda: answers(url) or run.poll() is not None, "the worker answers")
        assert run.poll() is None, (tmp_path / "run.out").read_text()[-3000:]
        pid = int(STARTED.search(log.read_text())[1])
        assert "it stops when the run ends or its process dies" in log.read_text()
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=HANG_S)
        wait_for(lambda: not process_running(pid), f"worker {pid} to exit after the run's kill")
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert not answers(url)  # its port is free for the next run's worker


def test_a_shared_worker_outlives_the_run_that_used_it(
    completed_pilot: Path, probe_worker: Worker
) -> None:
    log = (completed_pilot / "LOG.md").read_text()
    assert f"Using the worker at {probe_worker.url}: a shared worker started outside" in log
    assert "Started the local worker" not in log
    assert probe_worker.proc.poll() is None
    assert probe_worker.health()["parent_pid"] is None


def test_a_run_does_not_borrow_another_runs_worker(tmp_path: Path) -> None:
    """Another run's own worker at the usual URL would stop when that run ends, mid-way through
    this one: this run starts its own on a free port beside it and leaves the other alone."""
    tiny = build_tiny_model(tmp_path / "tiny", context_length=8192)
    other_run = subprocess.Popen(["sleep", "600"])  # stands in for the run that owns it
    theirs = start_worker(tiny, tmp_path / "theirs.log", "--parent-pid", str(other_run.pid))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "RESEARCH_RUNS_DIR": str(tmp_path / "runs"),
        "RESEARCH_LOCAL_MODEL": str(tiny),
        "RESEARCH_WORKER_URL": theirs.url,
        "RESEARCH_CACHE_DIR": str(tmp_path / "cache"),
    }
    args = ["run", str(DEU), "--pilot", "--offline", "--yes", "--run-id", "b"]
    run = spawn(*args, env=env, output=tmp_path / "run.out")
    log = tmp_path / "runs" / "b" / "LOG.md"
    try:
        wait_for(lambda: log.exists() and STARTED.search(log.read_text()), "its own worker")
        text = log.read_text()
        assert (
            f"The worker at {theirs.url} belongs to another run (process {other_run.pid})" in text
        )
        own = re.search(
            r"Started the local worker \(pid (\d+)\) for .* at (\S+), for this run", text
        )
        pid, url = int(own[1]), own[2]
        assert url != theirs.url
        wait_for(lambda: answers(url) or run.poll() is not None, "its own worker answers")
        assert run.poll() is None, (tmp_path / "run.out").read_text()[-3000:]
        wait_for(lambda: theirs.health()["requests_served"] > 0 or own_calls(url), "a call")
        assert theirs.health()["requests_served"] == 0  # every call went to its own worker
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=HANG_S)
        wait_for(lambda: not process_running(pid), f"its worker {pid} to exit")
        assert answers(theirs.url)  # the other run's worker is untouched
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        stop_worker(theirs)
        other_run.kill()
        other_run.wait()


def own_calls(url: str) -> bool:
    return httpx.get(f"{url}/health", timeout=2).json()["requests_served"] > 0
