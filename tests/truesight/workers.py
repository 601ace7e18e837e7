"""Start and stop the real worker process (`python -m truesight`) for tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import anthropic
import httpx
import pytest

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_worker(model_dir: Path, log: Path, *extra: str) -> Worker:
    """Start `python -m truesight` and wait until /health answers (60 s at most)."""
    port = free_port()
    cmd = [sys.executable, "-m", "truesight", "--model", str(model_dir), "--port", str(port)]
    # CPU fp32 even on a GPU box: bf16 noise could flip the tiny model's greedy tokens between
    # batched and solo runs, and the model is too small for the GPU to matter.
    cmd += ["--device", "cpu"]
    with log.open("w") as err:  # a file, not a pipe: nobody drains a pipe while tests run
        proc = subprocess.Popen([*cmd, *extra], cwd=REPO, stderr=err, stdout=err)
    worker = Worker(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"worker exited with {proc.returncode}:\n{worker.stderr()}")
        try:
            if httpx.get(f"{worker.url}/health", timeout=1).status_code == 200:
                return worker
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_worker(worker)
    pytest.fail(f"worker did not answer /health within 60 s:\n{worker.stderr()}")


def stop_worker(worker: Worker) -> int:
    """SIGTERM, then SIGKILL if it lingers; return the exit code."""
    worker.proc.terminate()
    try:
        return worker.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.proc.kill()
        return worker.proc.wait()
