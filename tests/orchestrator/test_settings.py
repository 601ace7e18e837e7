"""Settings: every variable read from the environment when asked, with today's defaults, and
handed to the worker process on its command line (the worker reads none of our environment)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from orchestrator.cli.probes import train_cmd
from orchestrator.cli.worker import worker_cmd
from orchestrator.context import endpoint
from orchestrator.protocol.schema import ModelRef
from orchestrator.settings import Settings
from orchestrator.worker import worker_command


def test_defaults_when_nothing_is_set() -> None:
    s = Settings.from_env({})
    assert s.runs_dir == Path("runs")
    assert s.worker_url == "http://127.0.0.1:8765" and s.worker_token is None
    assert s.local_model == "smollm2"
    assert (s.max_retries, s.timeout_s, s.local_timeout_s) == (4, 120.0, 900.0)
    assert (s.batch_poll_s, s.worker_start_timeout_s) == (30.0, 1200.0)
    assert s.anthropic_api_key is None and s.anthropic_base_url is None
    assert s.cache_dir == Path.home() / ".cache" / "research"
    assert s.user == "human" and s.overlap_probes


def test_every_variable_is_read_by_its_name() -> None:
    env = {
        "RESEARCH_RUNS_DIR": "/r",
        "RESEARCH_WORKER_URL": "http://h:1/",
        "RESEARCH_WORKER_TOKEN": "tok-9b1c",
        "RESEARCH_LOCAL_MODEL": "m",
        "RESEARCH_LOCAL_TIMEOUT": "9",
        "RESEARCH_WORKER_START_TIMEOUT": "8",
        "RESEARCH_CACHE_DIR": "/c",
        "ANTHROPIC_API_KEY": "sk-7f3a",
        "ANTHROPIC_BASE_URL": "http://a",
        "RESEARCH_MAX_RETRIES": "0",
        "RESEARCH_TIMEOUT": "2.5",
        "RESEARCH_BATCH_POLL_S": "0.05",
        "RESEARCH_OVERLAP_PROBES": "0",
        "USERNAME": "win",
    }
    s = Settings.from_env(env)
    assert (s.runs_dir, s.worker_url, s.worker_secret()) == (Path("/r"), "http://h:1", "tok-9b1c")
    assert (s.local_model, s.local_timeout_s, s.worker_start_timeout_s) == ("m", 9.0, 8.0)
    assert (s.cache_dir, s.api_key(), s.anthropic_base_url) == (Path("/c"), "sk-7f3a", "http://a")
    assert "sk-7f3a" not in repr(s) and "tok-9b1c" not in repr(s)  # secrets show as stars
    assert (s.max_retries, s.timeout_s, s.batch_poll_s, s.user) == (0, 2.5, 0.05, "win")
    assert not s.overlap_probes
    assert Settings.from_env({**env, "USER": "unix"}).user == "unix"
    assert Settings.from_env({"RESEARCH_RUNS_DIR": ""}).runs_dir == Path("runs")  # empty = unset


def test_the_environment_is_read_when_asked_not_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESEARCH_MAX_RETRIES", "1")
    assert Settings.from_env().max_retries == 1
    monkeypatch.setenv("RESEARCH_MAX_RETRIES", "2")
    assert Settings.from_env().max_retries == 2


def test_endpoints_come_from_the_settings() -> None:
    s = Settings.from_env({"ANTHROPIC_API_KEY": "k", "RESEARCH_TIMEOUT": "3"})
    cloud = endpoint(ModelRef(provider="anthropic", model="claude", concurrency=5), s)
    assert (cloud.api_key, cloud.base_url, cloud.timeout_s, cloud.concurrency) == ("k", None, 3, 5)
    local = endpoint(ModelRef(provider="local", model="smollm2"), s)
    assert local.local and local.api_key == "local" and local.base_url == "http://127.0.0.1:8765"
    assert local.timeout_s == 900.0 and local.max_retries == 4


def test_the_worker_gets_the_cache_dir_on_its_command_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cmd = worker_command("smollm2", "127.0.0.1", 8765, tmp_path)
    assert cmd[:3] == [sys.executable, "-m", "truesight"]
    assert cmd[cmd.index("--cache-dir") + 1] == str(tmp_path)

    execs: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda exe, args: execs.append(args))
    monkeypatch.setenv("RESEARCH_CACHE_DIR", str(tmp_path / "cache"))
    worker_cmd(model="smollm2", port=1, host="127.0.0.1", token=None, device="cpu")
    train_cmd(tmp_path / "d.jsonl", model="smollm2")
    for args in execs:
        assert args[args.index("--cache-dir") + 1] == str(tmp_path / "cache")
    assert execs[1][1:3] == ["-m", "truesight.train"] and "--layer" not in execs[1]


def test_several_workers_are_one_comma_separated_variable() -> None:
    s = Settings.from_env({"RESEARCH_WORKER_URL": " http://gpu-1:8765/ , http://gpu-2:8765 "})
    assert s.worker_urls == ("http://gpu-1:8765", "http://gpu-2:8765")
    assert s.worker_url == "http://gpu-1:8765"  # local models without a base_url generate there
    assert endpoint(ModelRef(provider="local", model="m"), s).base_url == "http://gpu-1:8765"
    for broken, why in (
        ("http://a:1,,http://b:2", "an empty URL"),
        ("http://a:1,http://a:1/", "twice"),
    ):
        with pytest.raises(ValueError, match=why):
            Settings.from_env({"RESEARCH_WORKER_URL": broken})
