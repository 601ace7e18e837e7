"""Fixtures shared by the worker tests: one tiny model and one worker process per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.tiny_model import build_tiny_model
from tests.truesight.workers import Worker, start_worker, stop_worker


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def probes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session worker's trained-probes folder: empty until a test trains a probe into it."""
    return tmp_path_factory.mktemp("probes")


@pytest.fixture(scope="session")
def worker(
    model_dir: Path, probes_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    """The real worker on the tiny model, its probe cache and trained probes in temp folders."""
    logs = tmp_path_factory.mktemp("logs")
    cache = ("--cache", str(logs / "probe-cache.sqlite"))
    w = start_worker(model_dir, logs / "worker.log", *cache, "--probes-dir", str(probes_dir))
    yield w
    code = stop_worker(w)
    assert code == 0, f"worker did not shut down cleanly ({code}):\n{w.stderr()}"
    assert "research worker: serving tiny" in w.stderr()
