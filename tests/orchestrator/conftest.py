"""Fixtures shared by the orchestrator's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import API_KEY
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.designer import designer


@pytest.fixture
def design_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeAnthropic]:
    """The fake server answering as the scripted designer, and the environment pointing
    `research design` at it (runs under `tmp_path/runs`)."""
    with FakeAnthropic(designer) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
        monkeypatch.setenv("RESEARCH_RUNS_DIR", str(tmp_path / "runs"))
        monkeypatch.setenv("RESEARCH_RETRY_WAIT_S", "0.05")
        yield server
