"""Start the local worker (`python -m truesight`) for a run that needs it, and stop it after.

The orchestrator never imports `truesight`: it talks to the worker over HTTP, so the worker can
as well run on a GPU host (set RESEARCH_WORKER_URL and, beyond loopback, RESEARCH_WORKER_TOKEN).
A worker it starts gets its cache folder (RESEARCH_CACHE_DIR) on the command line: `truesight`
reads no environment of ours.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import httpx

from orchestrator.errors import UserError
from orchestrator.protocol.schema import Protocol
from orchestrator.rundir import RunDir
from orchestrator.settings import Settings


def healthy(url: str) -> dict | None:
    try:
        r = httpx.get(f"{url}/health", timeout=2.0)
        return r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def needs_worker(protocol: Protocol) -> bool:
    refs = [*protocol.subjects, protocol.evaluation.judge]
    return protocol.probes is not None or any(r.provider == "local" for r in refs)


def worker_model(protocol: Protocol, default: str) -> str:
    """The model to start a worker with: the local subjects' and judge's, else the probes',
    else `default` (the settings' local model)."""
    refs = [*protocol.subjects, protocol.evaluation.judge]
    local = [r.model for r in refs if r.provider == "local"]
    if local:
        return local[0]
    return (protocol.probes.model if protocol.probes else None) or default


def worker_command(model: str, host: str, port: int, cache_dir: Path) -> list[str]:
    """The command line of a worker process (`python -m truesight`)."""
    where = ["--host", host, "--port", str(port)]
    cache = ["--cache-dir", str(cache_dir)]
    return [sys.executable, "-m", "truesight", "--model", model, *where, *cache]


@contextmanager
def local_worker(run: RunDir, protocol: Protocol, settings: Settings) -> Iterator[str]:
    """Yield the worker URL; start a worker first when none answers there."""
    url = settings.worker_url
    model = worker_model(protocol, settings.local_model)
    if (health := healthy(url)) is not None:
        run.log.append("run", "orchestrator", "worker", f"Using the worker at {url} ({health})")
        yield url
        return
    parsed = urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost"):
        raise UserError(f"no worker answers at {url}; start one there with `research worker`")
    log_path = run.path("worker.log")
    cmd = worker_command(model, parsed.hostname, parsed.port or 80, settings.cache_dir)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    text = f"Started the local worker (pid {proc.pid}) for {model} at {url}; output in worker.log."
    run.log.append("run", "orchestrator", "worker", text)
    try:
        _wait(proc, url, log_path, settings.worker_start_timeout_s)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait(proc: subprocess.Popen, url: str, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if healthy(url) is not None:
            return
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-1500:]
            hint = ""
            if "No module named" in tail:
                hint = "\nThe worker needs the local extra: pip install torch==2.13.0 -e '.[local]'"
            raise UserError(f"the local worker exited with code {proc.returncode}:\n{tail}{hint}")
        time.sleep(0.5)
    raise UserError(f"the local worker did not answer at {url} in time; see {log_path}")
