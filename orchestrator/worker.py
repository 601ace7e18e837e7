"""Start the local worker (`python -m truesight`) for a run that needs it, and stop it after.

Two kinds of worker, and LOG.md says which a run used. One that already answers at the worker
URL (started with `research worker`, or on a GPU host) is shared: the run uses it and leaves it
running. One the run starts is the run's own: it gets `--parent-pid` and stops when the run's
process ends, by the `finally` below on a normal exit or an exception, and by its own watch of
this process (`truesight.lifetime`) when the run is killed with SIGKILL and no `finally` runs.

The orchestrator never imports `truesight`: it talks to the worker over HTTP, so the worker can
as well run on a GPU host (set RESEARCH_WORKER_URL and, beyond loopback, RESEARCH_WORKER_TOKEN).
A worker it starts gets its cache folder (RESEARCH_CACHE_DIR) on the command line: `truesight`
reads no environment of ours.

Several workers (RESEARCH_WORKER_URL a comma-separated list, e.g. one per GPU host) are all
shared: a run checks that each answers and that all serve the same model, starts none, and
the probe client shards texts across them (agents.shards).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import httpx

from memory import RunLog
from orchestrator.errors import UserError
from orchestrator.protocol.schema import ModelRef, Protocol
from orchestrator.rundir import RunDir
from orchestrator.settings import Settings


def healthy(url: str) -> dict | None:
    try:
        r = httpx.get(f"{url}/health", timeout=2.0)
        return r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def served_by_worker(protocol: Protocol) -> list[ModelRef]:
    """The protocol's models the worker generates for: `local` ones without a `base_url` (one
    with a base_url is served there, e.g. by vLLM or llama.cpp's server)."""
    refs = [*protocol.subjects, protocol.evaluation.judge]
    if (q := protocol.analysis.qualitative) is not None and q.model is not None:
        refs.append(q.model)
    return [r for r in refs if r.provider == "local" and r.base_url is None]


def needs_worker(protocol: Protocol) -> bool:
    return protocol.probes is not None or bool(served_by_worker(protocol))


def worker_model(protocol: Protocol, default: str) -> str:
    """The model to start a worker with: the local subjects' and judge's, else the probes',
    else `default` (the settings' local model)."""
    local = [r.model for r in served_by_worker(protocol)]
    if local:
        return local[0]
    return (protocol.probes.model if protocol.probes else None) or default


def worker_command(
    model: str, host: str, port: int, cache_dir: Path, parent_pid: int | None = None
) -> list[str]:
    """The command line of a worker process (`python -m truesight`); with `parent_pid` the
    worker stops when that process ends."""
    where = ["--host", host, "--port", str(port)]
    cache = ["--cache-dir", str(cache_dir)]
    lease = [] if parent_pid is None else ["--parent-pid", str(parent_pid)]
    return [sys.executable, "-m", "truesight", "--model", model, *where, *cache, *lease]


def _whose(health: dict) -> str:
    """Who started the worker that answered `health`, for LOG.md."""
    parent = health.get("parent_pid")
    if parent is None:
        return "a shared worker started outside this run (e.g. `research worker`); left running"
    return f"started by another run (pid {parent}); it stops when that run ends"


@contextmanager
def local_worker(run: RunDir, protocol: Protocol, settings: Settings) -> Iterator[str]:
    """Yield the worker URL; start a worker first when none answers there. Several workers
    must all be running already, and serve the same model: the first URL is yielded.

    A worker that answers but belongs to another run (its /health names that run's process) is
    not borrowed: it would stop when that run ends. This run starts its own on a free port of
    the same host and yields that URL instead."""
    if len(settings.worker_urls) > 1:
        shared_workers(run, settings.worker_urls)
        yield settings.worker_url
        return
    model = worker_model(protocol, settings.local_model)
    with worker_for(run.log, run.path("worker.log"), model, settings) as url:
        yield url


@contextmanager
def worker_for(
    log: RunLog, log_path: Path, model: str, settings: Settings, what: str = "run"
) -> Iterator[str]:
    """Yield the URL of a worker serving `model`: the one at the settings' URL, or one started
    for this process (its output in `log_path`) that stops when the block ends. What was done
    goes to `log` (of `what`: a run, or a design)."""
    url = settings.worker_url
    borrowed = ""
    if (health := healthy(url)) is not None:
        owner = health.get("parent_pid")
        if owner is None or owner == os.getpid():
            text = f"Using the worker at {url}: {_whose(health)} ({health.get('model')})"
            log.append("run", "orchestrator", "worker", text)
            yield url
            return
        # Another run's own worker stops when that run ends, in the middle of this one: start
        # this run's own beside it instead of borrowing it.
        parsed = urlparse(url)
        if parsed.hostname not in ("127.0.0.1", "localhost"):
            raise UserError(
                f"the worker at {url} belongs to another run (process {owner}) and stops when it "
                "ends; start a shared one there with `research worker`, or point "
                "RESEARCH_WORKER_URL elsewhere"
            )
        url = f"{parsed.scheme}://{parsed.hostname}:{_free_port(parsed.hostname)}"
        borrowed = (
            f"The worker at {settings.worker_url} belongs to another run (process {owner}) and "
            f"stops when that run ends, so this {what} starts its own. "
        )
    parsed = urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost"):
        raise UserError(f"no worker answers at {url}; start one there with `research worker`")
    host, port = parsed.hostname, parsed.port or 80
    # Linux sends the parent-death signal when the *thread* that started the worker ends: this
    # one drives the run and leaves this block (stopping the worker) before it ends.
    cmd = worker_command(model, host, port, settings.cache_dir, parent_pid=os.getpid())
    with log_path.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    text = borrowed + (
        f"Started the local worker (pid {proc.pid}) for {model} at {url}, for this {what} only: "
        f"it stops when the {what} ends or its process dies; output in worker.log."
    )
    log.append("run", "orchestrator", "worker", text)
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


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def shared_workers(run: RunDir, urls: Sequence[str]) -> None:
    """Check that every listed worker answers and that all serve the same weights in the same
    dtype (readouts of two models mixed in one result would bias it silently); say in LOG.md
    which were used."""
    healths: dict[str, dict] = {}
    for url in urls:
        if (health := healthy(url)) is None:
            raise UserError(
                f"no worker answers at {url}, one of the {len(urls)} workers in "
                "RESEARCH_WORKER_URL. A run starts no worker for a list: start it there with "
                "`research worker` (beyond loopback with --host and --token), or leave it out."
            )
        healths[url] = health
    (first, theirs), *others = healths.items()
    for url, health in others:
        if _identity(health) != _identity(theirs):
            raise UserError(
                f"the workers in RESEARCH_WORKER_URL serve different models: {first} "
                f"{_describe(theirs)}, {url} {_describe(health)}. Readouts of both would be "
                "mixed in one result: serve the same model, in the same dtype, on every worker."
            )
    listed = "".join(f"\n- {url}: {_whose(h)}" for url, h in healths.items())
    text = (
        f"Using {len(urls)} workers ({theirs.get('model')}, {theirs.get('dtype')}), probe "
        f"requests sharded across them by text; local models without a base_url generate on "
        f"{first}:{listed}"
    )
    run.log.append("run", "orchestrator", "worker", text)


def _identity(health: dict) -> tuple[object, object]:
    """What must match between workers: the weights (by fingerprint; the model's name on a
    worker too old to report one) and the dtype."""
    return health.get("fingerprint") or health.get("model"), health.get("dtype")


def _describe(health: dict) -> str:
    fingerprint = health.get("fingerprint") or "?"
    return f"{health.get('model')} ({health.get('dtype')}, weights {fingerprint[:12]})"


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
