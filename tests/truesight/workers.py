"""Start and stop the real worker process (`python -m truesight`) for tests."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import anthropic
import httpx
import pytest

from tests.limits import HANG_S

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Worker:
    proc: subprocess.Popen
    url: str
    log: Path

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self, api_key: str = "x") -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=api_key, max_retries=0, timeout=60)

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=10).json()


ANNOUNCED = re.compile(r"research worker: serving .+? on (http://\S+) \(")
"""The line the worker prints once it listens, with the port it picked."""


def start_worker(
    model_dir: Path, log: Path, *extra: str, program: tuple[str, ...] = ("-m", "truesight")
) -> Worker:
    """Start `python -m truesight` (or `program`, e.g. `research worker`, which becomes it) and
    wait until it announces that it listens. It picks a free port itself (`--port 0`): a port
    chosen here and bound there could be taken in between."""
    cmd = [sys.executable, *program, "--model", str(model_dir), "--port", "0"]
    # CPU fp32 even on a GPU box: bf16 noise could flip the tiny model's greedy tokens between
    # batched and solo runs, and the model is too small for the GPU to matter.
    cmd += ["--device", "cpu"]
    with log.open("w") as err:  # a file, not a pipe: nobody drains a pipe while tests run
        proc = subprocess.Popen([*cmd, *extra], cwd=REPO, stderr=err, stdout=err)
    guard = time.monotonic() + HANG_S
    while (found := ANNOUNCED.search(log.read_text(errors="replace"))) is None:
        if proc.poll() is not None:
            pytest.fail(f"worker exited with {proc.returncode}:\n{log.read_text()}")
        if time.monotonic() > guard:
            stop_worker(Worker(proc, "", log))
            pytest.fail(f"worker did not start within {HANG_S} s:\n{log.read_text()}")
        time.sleep(0.2)
    return Worker(proc, found[1], log)


def stop_worker(worker: Worker) -> int:
    """SIGTERM, then SIGKILL if it lingers; return the exit code."""
    worker.proc.terminate()
    try:
        return worker.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.proc.kill()
        return worker.proc.wait()
