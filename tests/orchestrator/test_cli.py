"""The command line explains itself and refuses unsafe or impossible requests clearly."""

from __future__ import annotations

import pytest

from tests.conftest import research


def test_help_lists_every_command() -> None:
    r = research("--help")
    assert r.returncode == 0
    for command in ("run", "resume", "approve", "status", "report", "validate", "worker", "view"):
        assert command in r.stdout


@pytest.mark.parametrize("command", ["run", "resume", "approve", "worker", "view"])
def test_each_command_has_help(command: str) -> None:
    r = research(command, "--help")
    assert r.returncode == 0 and "Usage" in r.stdout


def test_worker_beyond_loopback_needs_a_token() -> None:
    r = research("worker", "--host", "0.0.0.0", "--port", "0")
    assert r.returncode == 2
    assert "--token is required" in r.stderr


def test_view_of_an_unknown_run_is_refused_before_serving(tmp_path) -> None:  # noqa: ANN001
    r = research("view", "nope", "--runs-dir", str(tmp_path), "--no-open")
    assert r.returncode == 2 and "no run 'nope'" in r.stderr and "http://" not in r.stdout


def test_bad_option_is_a_usage_error() -> None:
    r = research("run", "--no-such-flag")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_probes_train_through_the_research_cli(tmp_path) -> None:  # noqa: ANN001
    from tests.fakes.tiny_model import build_tiny_model
    from tests.truesight.test_linear import write_dataset

    model = build_tiny_model(tmp_path / "tiny")
    data = write_dataset(tmp_path / "tiny.jsonl")
    named = ["--model", str(model), "--name", "weekday"]
    r = research("probes", "train", str(data), *named, "--probes-dir", str(tmp_path / "probes"))
    assert r.returncode == 0, r.stderr
    assert "AUROC" in r.stdout
    assert (tmp_path / "probes" / "weekday" / "probe.json").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"header": true}\n{"id": 1}\n')
    r = research("probes", "train", str(bad), "--model", str(model))
    assert r.returncode == 2 and "Traceback" not in r.stderr and str(bad) in r.stderr
