"""Start `python -m truesight` for a benchmark: result cache off, trained probes in a temp folder
(optionally seeded with copies of existing ones), models from RESEARCH_CACHE_DIR (the settings'
cache folder, as `research worker` does)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from orchestrator.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_worker(
    model: str, probes_from: Path | None = None, extra: list[str] | None = None
) -> Iterator[str]:
    """The worker's base URL once /health answers; stopped on exit. `probes_from`: a probes
    folder whose trained probes are copied into the worker's (it never writes to the original).
    `extra`: more command-line arguments for the worker."""
    port = free_port()
    cache_dir = Settings.from_env().cache_dir
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "worker.log", "w") as log:
        if probes_from is not None and probes_from.is_dir():
            shutil.copytree(probes_from, Path(tmp) / "probes")
        cmd = [sys.executable, "-m", "truesight", "--model", model, "--port", str(port)]
        cmd += [
            "--cache-dir",
            str(cache_dir),
            "--no-cache",
            "--probes-dir",
            str(Path(tmp) / "probes"),
            *(extra or []),
        ]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited: {(Path(tmp) / 'worker.log').read_text()}")
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            proc.wait()
