"""`research worker` and `research probes train` hand the worker's own flags to its process:
the result cache and the probes folder, a probe layer given as a share of depth, the variant."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from orchestrator.cli.probes import Variant
from orchestrator.protocol.schema import TrainedProbe
from tests.conftest import research
from tests.truesight.test_linear import write_dataset
from tests.truesight.workers import start_worker, stop_worker

RESEARCH_WORKER = ("-m", "orchestrator.cli.app", "worker")


def train(data: Path, model: Path, probes: Path, *flags: str) -> tuple[int, str]:
    named = ["--model", str(model), "--probes-dir", str(probes), *flags]
    r = research("probes", "train", str(data), *named)
    return r.returncode, r.stdout + r.stderr


def test_probes_train_takes_a_share_of_depth_and_a_variant(
    tmp_path: Path, probe_model: Path
) -> None:
    data, probes = write_dataset(tmp_path / "tiny.jsonl"), tmp_path / "probes"
    # the tiny model has 2 layers: a quarter up is layer 0 (the middle, the default, is 1)
    code, out = train(data, probe_model, probes, "--layer", "0.25", "--name", "quarter")
    assert code == 0, out
    meta = json.loads((probes / "quarter" / "probe.json").read_text())
    assert (meta["layer"], meta["variant"]) == (0, "as_written")
    # same_statement reads meta.true_statement, which this dataset lacks: refused, saying so
    code, out = train(data, probe_model, probes, "--variant", "same_statement", "--name", "s")
    assert code == 2 and "same_statement" in out and "Traceback" not in out
    assert not (probes / "s").exists()


def test_probes_train_refuses_a_layer_as_a_protocol_does(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "tiny.jsonl")
    for bad in ("1.5", "-2", "middle"):
        with pytest.raises(ValidationError) as protocol:
            TrainedProbe(dataset="d.jsonl", layer=bad)
        words = str(protocol.value.errors()[0]["ctx"]["error"])
        assert "a share of the model's depth between 0 and 1" in words
        r = research("probes", "train", str(data), "--layer", bad)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert words in " ".join(r.stderr.split()), r.stderr


def test_the_variants_are_the_protocols() -> None:
    assert [v.value for v in Variant] == list(
        TrainedProbe.model_fields["variant"].annotation.__args__  # type: ignore[union-attr]
    )


def test_research_worker_passes_no_cache_and_probes_dir(
    tmp_path: Path, probe_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESEARCH_CACHE_DIR", str(tmp_path / "cache"))
    data, probes = write_dataset(tmp_path / "tiny.jsonl"), tmp_path / "probes"
    assert train(data, probe_model, probes, "--name", "weekday")[0] == 0
    flags = ("--no-cache", "--probes-dir", str(probes))
    w = start_worker(probe_model, tmp_path / "worker.log", *flags, program=RESEARCH_WORKER)
    try:
        listing = httpx.get(f"{w.url}/v1/probes", timeout=10).json()
        assert [p["name"] for p in listing["trained_probes"]] == ["weekday"]
        for _ in range(2):
            r = httpx.post(f"{w.url}/v1/probes/surprisal", json={"texts": ["hi there"]}, timeout=60)
            assert r.status_code == 200, r.text
        health = w.health()
        assert (health["probe_texts_computed"], health["probe_cache_hits"]) == (2, 0)
        assert health["parent_pid"] is None  # a shared worker: runs use it and leave it running
    finally:
        assert stop_worker(w) == 0, w.stderr()
    assert not (tmp_path / "cache" / "probe-cache.sqlite").exists()
