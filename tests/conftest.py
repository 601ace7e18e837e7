"""Shared fixtures: the fake Anthropic world, an isolated runs directory, the `research` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.world import deu_world
from tests.truesight.workers import Worker, start_worker, stop_worker

ROOT = Path(__file__).resolve().parent.parent
DEU = ROOT / "protocols" / "deu.yaml"
SINCERITY = ROOT / "protocols" / "sincerity.yaml"
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
def probe_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """One real worker on a tiny random model, serving the probes of every whole-run test."""
    from tests.fakes.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path_factory.mktemp("probe-model"), context_length=8192)
    logs = tmp_path_factory.mktemp("probe-worker")
    w = start_worker(
        model,
        logs / "worker.log",
        *("--cache", str(logs / "cache.sqlite"), "--probes-dir", str(logs / "probes")),
    )
    yield w
    stop_worker(w)


@pytest.fixture
def env(
    world: FakeAnthropic, runs: Path, monkeypatch: pytest.MonkeyPatch, probe_worker: Worker
) -> dict[str, str]:
    """Environment for runs against the fake world, in-process and in subprocesses."""
    values = {
        "RESEARCH_WORKER_URL": probe_worker.url,
        "ANTHROPIC_BASE_URL": world.url,
        "ANTHROPIC_API_KEY": API_KEY,
        "RESEARCH_RUNS_DIR": str(runs),
        "RESEARCH_MAX_RETRIES": "6",
        "RESEARCH_TIMEOUT": "2",
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return {**os.environ, **values}


def research(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, without a terminal (stdin closed)."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli.app", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def spawn(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli.app", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
