"""Shared fixtures: the fake Anthropic world, an isolated runs directory, the `research` CLI."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.world import deu_world
from tests.limits import HANG_S, SDK_TIMEOUT_S
from tests.truesight.workers import Worker, start_worker, stop_worker

ROOT = Path(__file__).resolve().parent.parent
DEU = ROOT / "protocols" / "deu.yaml"
SINCERITY = ROOT / "protocols" / "sincerity.yaml"
SYCOPHANCY = ROOT / "protocols" / "sycophancy.yaml"
DEU_TOOLS = ROOT / "protocols" / "deu_tools.yaml"
API_KEY = "sk-test-MARKER-7f3a9c1e5b"
"""The API key tests run with: it must never appear in a run directory."""


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def world() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(deu_world()) as server:
        yield server


@pytest.fixture(scope="session")
def probe_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random model the whole-run tests' workers serve."""
    from tests.fakes.tiny_model import build_tiny_model

    # seed 1: the random-weight control of a probe (truesight.validity) draws with seed 0, and a
    # control drawn like the model itself would be the model, hiding what the control is for
    return build_tiny_model(tmp_path_factory.mktemp("probe-model"), context_length=8192, seed=1)


def start_probe_worker(model: Path, logs: Path) -> Worker:
    """A real worker on `model`, with its own result cache and trained probes under `logs`."""
    return start_worker(
        model,
        logs / "worker.log",
        *("--cache", str(logs / "cache.sqlite"), "--probes-dir", str(logs / "probes")),
    )


@pytest.fixture(scope="session")
def probe_worker(tmp_path_factory: pytest.TempPathFactory, probe_model: Path) -> Iterator[Worker]:
    """One real worker on a tiny random model, serving the probes of every whole-run test."""
    w = start_probe_worker(probe_model, tmp_path_factory.mktemp("probe-worker"))
    yield w
    stop_worker(w)


@pytest.fixture(scope="session")
def long_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A worker on a tiny random model with a 32k context: its byte-level tokenizer spends about
    a token per character of the random text it writes, which SmolLM2 writes in a quarter as
    many, so an offline design's bounded drafts need the room."""
    from tests.fakes.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("long-worker")
    model = build_tiny_model(root / "model", context_length=32768, seed=2)
    w = start_probe_worker(model, root)
    yield w
    stop_worker(w)


@pytest.fixture(scope="session")
def second_probe_worker(
    tmp_path_factory: pytest.TempPathFactory, probe_model: Path
) -> Iterator[Worker]:
    """Another worker on the same model (its own cache and probes): the second of two that
    probe requests are sharded across."""
    w = start_probe_worker(probe_model, tmp_path_factory.mktemp("second-probe-worker"))
    yield w
    stop_worker(w)


def fake_env(world: FakeAnthropic, runs: Path, worker: Worker) -> dict[str, str]:
    """The variables that point a run at the fake world, the probe worker and `runs`."""
    return {
        "RESEARCH_WORKER_URL": worker.url,
        "ANTHROPIC_BASE_URL": world.url,
        "ANTHROPIC_API_KEY": API_KEY,
        "RESEARCH_RUNS_DIR": str(runs),
        "RESEARCH_MAX_RETRIES": "6",
        "RESEARCH_TIMEOUT": str(SDK_TIMEOUT_S),
        # a failed call's follow-up tries wait this long (15 s, doubling, on a real API)
        "RESEARCH_RETRY_WAIT_S": "0.05",
    }


@pytest.fixture
def env(
    world: FakeAnthropic, runs: Path, monkeypatch: pytest.MonkeyPatch, probe_worker: Worker
) -> dict[str, str]:
    """Environment for runs against the fake world, in-process and in subprocesses."""
    values = fake_env(world, runs, probe_worker)
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return {**os.environ, **values}


@pytest.fixture(scope="session")
def completed_pilot(tmp_path_factory: pytest.TempPathFactory, probe_worker: Worker) -> Path:
    """One complete DEU pilot run (--yes) against the fake world, made once per session.
    Read it in place; copy it with `copy_run` to change it."""
    from orchestrator import runner

    runs = tmp_path_factory.mktemp("completed")
    with FakeAnthropic(deu_world()) as world, pytest.MonkeyPatch.context() as mp:
        for k, v in fake_env(world, runs, probe_worker).items():
            mp.setenv(k, v)
        assert runner.start(DEU, pilot=True, yes=True, run_id="pilot").status == "complete"
    return runs / "pilot"


def without_probes(protocol: str) -> str:
    """A protocol's text without its `probes:` section (a whole run's slowest stage, for tests
    about something else)."""
    return re.sub(r"\nprobes:\n(  .*\n|\n)*", "\n", protocol)


def copy_run(run_dir: Path, runs: Path, run_id: str | None = None) -> Path:
    """A copy of a finished run directory under `runs` (same id unless given: the run's id is
    its directory's name, and LangGraph's thread follows the id, so a renamed copy is only fit
    for reading records and reports, not for resuming)."""
    target = runs / (run_id or run_dir.name)
    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns(".lock"))
    return target


def research(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = HANG_S,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, without a terminal (stdin closed); `preexec_fn` runs in
    the child before it starts (e.g. to set a resource limit)."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli.app", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
    )


def spawn(*args: str, env: dict[str, str], output: Path | None = None) -> subprocess.Popen[str]:
    """Start the real CLI in a subprocess. Its output goes to pipes for `communicate()`, or to
    the file `output` for a process nobody reads from until it ends (a full pipe would block it)."""
    command = [sys.executable, "-m", "orchestrator.cli.app", *args]
    streams: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    with contextlib.ExitStack() as files:  # the child has its own copy of an output file
        if output is not None:
            sink = files.enter_context(output.open("w"))
            streams = {"stdout": sink, "stderr": subprocess.STDOUT}
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, text=True, **streams
        )
