"""Beyond one machine: probe requests sharded over several workers (RESEARCH_WORKER_URL a list),
and `provider: local` models served by another engine at their `base_url` (vLLM, llama.cpp's
server), here the fake Anthropic server standing in for one."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.truesight import TruesightClient, WorkersDisagree
from orchestrator import runner
from orchestrator.errors import UserError
from orchestrator.protocol.loader import load_protocol_text
from orchestrator.protocol.schema import Protocol
from orchestrator.records import ProbeSource, Records
from orchestrator.worker import needs_worker
from tests.agents.test_shards import approx
from tests.conftest import DEU, start_probe_worker, without_probes
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.tiny_model import build_tiny_model
from tests.fakes.world import deu_world
from tests.truesight.test_linear import write_dataset
from tests.truesight.workers import Worker, stop_worker


def dead_url() -> str:
    """A loopback URL nothing listens at (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def readouts(run_dir: Path) -> dict[tuple[str | None, str], dict | None]:
    rows = Records(run_dir / "records.sqlite").probe_results(source=ProbeSource.STAGE)
    return {(r.item_id, r.probe): r.result for r in rows}


def test_a_pilot_sharded_over_two_workers_reads_what_one_worker_read(
    env: dict,
    runs: Path,
    completed_pilot: Path,
    probe_worker: Worker,
    second_probe_worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    urls = [probe_worker.url, second_probe_worker.url]
    monkeypatch.setenv("RESEARCH_WORKER_URL", " , ".join(urls))
    before = second_probe_worker.health()["probe_requests"]
    assert runner.start(DEU, pilot=True, yes=True, run_id="sharded").status == "complete"
    assert second_probe_worker.health()["probe_requests"] > before
    log = (runs / "sharded" / "LOG.md").read_text()
    model = probe_worker.health()["model"]
    assert f"Using 2 workers ({model}, float32), probe requests sharded across them by text" in log
    assert all(f"- {url}: a shared worker" in log for url in urls)
    assert "Started the local worker" not in log
    sharded, alone = readouts(runs / "sharded"), readouts(completed_pilot)
    assert sharded.keys() == alone.keys()
    assert {probe for _, probe in alone} >= {"surprisal", "author", "linear:deception"}
    for key, want in alone.items():
        assert want is not None, key
        assert sharded[key] == approx(want), key


def test_a_listed_worker_that_does_not_answer_stops_the_run_before_any_work(
    env: dict, runs: Path, world: FakeAnthropic, probe_worker: Worker, monkeypatch
) -> None:
    dead = dead_url()
    monkeypatch.setenv("RESEARCH_WORKER_URL", f"{probe_worker.url},{dead}/")
    with pytest.raises(UserError, match=f"no worker answers at {dead}, one of the 2 workers"):
        runner.start(DEU, pilot=True, yes=True, run_id="half")
    assert world.requests == []  # not one subject call
    assert not (runs / "half" / "worker.log").exists()  # and no worker started for the list


@pytest.fixture(scope="module")
def other_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A worker on another tiny model: the same architecture, other weights."""
    model = build_tiny_model(tmp_path_factory.mktemp("other-model"), context_length=8192, seed=2)
    w = start_probe_worker(model, tmp_path_factory.mktemp("other-worker"))
    yield w
    stop_worker(w)


def test_workers_serving_different_models_are_refused(
    env: dict,
    world: FakeAnthropic,
    probe_worker: Worker,
    other_worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RESEARCH_WORKER_URL", f"{probe_worker.url},{other_worker.url}")
    with pytest.raises(UserError, match="serve different models") as refused:
        runner.start(DEU, pilot=True, yes=True, run_id="mixed")
    assert probe_worker.url in str(refused.value) and other_worker.url in str(refused.value)
    assert world.requests == []


def test_a_probe_trained_to_different_weights_is_refused(
    probe_worker: Worker, other_worker: Worker, tmp_path: Path
) -> None:
    """What guards a probe against workers that differ in what /health cannot show (other
    hardware, other kernels): every worker trains it, and their weights must be the same."""
    dataset = write_dataset(tmp_path / "tiny.jsonl").read_text()
    client = TruesightClient([probe_worker.url, other_worker.url])
    try:
        with pytest.raises(WorkersDisagree, match="trained probe odd-probe to different weights"):
            client.train("odd-probe", dataset, source="tiny.jsonl", layer=1)
    finally:
        client.close()


def at_engine(protocol: str, url: str) -> str:
    """The protocol with its subjects and judge as `provider: local` models at `url`."""
    anthropic = "    provider: anthropic\n"
    assert protocol.count(anthropic) == 3  # two subjects, the judge
    return protocol.replace(anthropic, f"    provider: local\n    base_url: {url}\n")


def test_local_models_at_a_base_url_are_called_there_and_need_no_worker(
    env: dict, runs: Path, world: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # nothing answers at the worker URL: a run that started a worker there would log it
    monkeypatch.setenv("RESEARCH_WORKER_URL", dead_url())
    with FakeAnthropic(deu_world()) as engine:  # stands in for `vllm serve` or llama-server
        protocol = tmp_path / "deu.yaml"
        protocol.write_text(at_engine(without_probes(DEU.read_text()), engine.url))
        assert not needs_worker(load_protocol_text(protocol.read_text(), protocol).protocol)
        assert runner.start(protocol, pilot=True, yes=True, run_id="engine").status == "complete"
        models = {r.body["model"] for r in engine.requests}
    assert models == {"claude-sonnet-4-6", "claude-haiku-4-5"}  # subjects, and the judge
    assert world.requests == []
    log = (runs / "engine" / "LOG.md").read_text()
    assert "orchestrator · worker" not in log and not (runs / "engine" / "worker.log").exists()
    assert f"free (local, {engine.url})" in log  # the forecast names where they are served
    records = Records(runs / "engine" / "records.sqlite")
    assert len(records.responses()) == len(records.items()) > 0


def test_a_worker_is_needed_for_probes_or_a_local_model_without_a_base_url() -> None:
    text = at_engine(DEU.read_text(), "http://gpu-host:8000")
    assert needs_worker(load(text))  # its probes run on the worker
    without = without_probes(text)
    assert not needs_worker(load(without))
    one_on_worker = without.replace("    base_url: http://gpu-host:8000\n", "", 1)
    assert needs_worker(load(one_on_worker))


def load(text: str) -> Protocol:
    return load_protocol_text(text, DEU).protocol
