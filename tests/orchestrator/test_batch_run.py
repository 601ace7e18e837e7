"""Whole runs with one subject on the Message Batches API, against the fake Anthropic world."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from memory import RunLog
from orchestrator import runner
from orchestrator.records import Records
from tests.conftest import DEU, research, spawn, without_probes
from tests.fakes.anthropic_server import FakeAnthropic, Fault, flaky_results
from tests.fakes.world import deu_world
from tests.limits import HANG_S

BATCHED = "claude-haiku"
EXPIRED = Fault("expired")


@pytest.fixture
def batched_deu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """protocols/deu.yaml with `batch: true` on one subject, beside a copy of its data files."""
    folder = tmp_path / "protocol"
    shutil.copytree(DEU.parent / "data", folder / "data")
    text = DEU.read_text()
    subject = f"  - id: {BATCHED}\n"
    assert text.count(subject) == 1
    (folder / "deu.yaml").write_text(text.replace(subject, subject + "    batch: true\n"))
    monkeypatch.setenv("RESEARCH_BATCH_POLL_S", "0.05")
    return folder / "deu.yaml"


def collect_costs(run_dir: Path) -> dict[str, float]:
    with sqlite3.connect(run_dir / "records.sqlite") as db:
        rows = db.execute("SELECT item, cost_usd FROM calls WHERE stage='collect'").fetchall()
    return dict(rows)


def responses(run_dir: Path) -> dict:
    rec = Records(run_dir / "records.sqlite")
    try:
        return rec.responses()
    finally:
        rec.close()


def test_batched_subject_answers_as_online_at_half_price(
    env: dict, runs: Path, world: FakeAnthropic, batched_deu: Path
) -> None:
    world.batch_polls = 2
    out = runner.start(batched_deu, pilot=True, yes=True, run_id="batched")
    assert out.status == "complete"
    creates = world.batch_creates()
    assert len(creates) == 1 and len(creates[0].body["requests"]) == 12
    assert all(r["params"]["model"] == "claude-haiku-4-5" for r in creates[0].body["requests"])
    online_haiku = [r for r in world.requests if r.body.get("model") == "claude-haiku-4-5"]
    assert not online_haiku  # the batched subject made no online call

    assert runner.start(DEU, pilot=True, yes=True, run_id="online").status == "complete"
    batched, online = responses(runs / "batched"), responses(runs / "online")
    assert len(batched) == 24 and batched == online
    costs, online_costs = collect_costs(runs / "batched"), collect_costs(runs / "online")
    for item, cost in costs.items():
        expected = online_costs[item] / 2 if item.startswith(BATCHED) else online_costs[item]
        assert cost == pytest.approx(expected) and cost > 0, item

    run_dir = runs / "batched"
    batch_id = json.loads((run_dir / "artifacts" / "batches" / f"{BATCHED}.json").read_text())
    [entry] = batch_id["batches"]
    assert entry["status"] == "collected" and entry["id"] in world.batches
    log = [e.text for e in RunLog(run_dir / "LOG.md").entries() if e.kind == "batch"]
    assert log[0].startswith(f"Submitted message batch {entry['id']} for {BATCHED}: 12 calls")
    assert log[-1].startswith(f"Message batch {entry['id']} for {BATCHED} ended: succeeded 12")


def test_ctrl_c_while_a_batch_is_in_flight_resumes_the_same_batch(
    env: dict, runs: Path, world: FakeAnthropic, batched_deu: Path
) -> None:
    world.batch_polls = 10**6  # never ends while the first process waits
    env = {**env, "RESEARCH_BATCH_POLL_S": "0.05"}
    proc = spawn("run", str(batched_deu), "--pilot", "--yes", "--run-id", "bk", env=env)
    guard = time.monotonic() + HANG_S
    while not any(b.polls for b in world.batches.values()):
        assert time.monotonic() < guard and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 130, err
    assert RunLog(runs / "bk" / "LOG.md").entries()[-1].kind == "interrupted"
    assert not [r for r in responses(runs / "bk").values() if r.item_id.startswith(BATCHED)]

    world.batch_polls = 0
    r = research("resume", "bk", "--yes", env=env)
    assert r.returncode == 0 and "complete" in r.stdout, r.stderr
    assert len(world.batch_creates()) == 1  # picked up, not submitted (and paid for) again
    got = responses(runs / "bk")
    assert len(got) == 24 and all(r.error is None for r in got.values())
    kinds = [
        e.text.split()[0] for e in RunLog(runs / "bk" / "LOG.md").entries() if e.kind == "batch"
    ]
    assert kinds == ["Submitted", "Resumed", "Message"]


def test_a_run_killed_before_the_batch_creation_reply_resumes_without_a_second_batch(
    env: dict, runs: Path, world: FakeAnthropic, batched_deu: Path
) -> None:
    held = threading.Event()  # the API has made the batch; its reply waits for the kill
    world.faults = lambda body, n: Fault.hold(held) if "requests" in body else None
    env = {**env, "RESEARCH_BATCH_POLL_S": "0.05"}
    proc = spawn("run", str(batched_deu), "--pilot", "--yes", "--run-id", "kb", env=env)
    try:
        guard = time.monotonic() + HANG_S
        while not world.batches:
            assert time.monotonic() < guard and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=HANG_S)
    finally:
        held.set()
    world.faults = None
    state = runs / "kb" / "artifacts" / "batches" / f"{BATCHED}.json"
    [entry] = json.loads(state.read_text())["batches"]
    assert entry["status"] == "creating"  # the intent was on file before the request went out

    r = research("resume", "kb", "--yes", env=env)
    assert r.returncode == 0 and "complete" in r.stdout, r.stderr
    assert len(world.batch_creates()) == 1 and len(world.batches) == 1  # found, not made again
    with sqlite3.connect(runs / "kb" / "records.sqlite") as db:
        left = db.execute("SELECT item FROM started WHERE item LIKE ?", (f"{BATCHED}%",))
        assert not left.fetchall()  # the batch was collected: its calls are not possibly paid
    got = responses(runs / "kb")
    assert len(got) == 24 and all(r.error is None for r in got.values())
    [entry] = json.loads(state.read_text())["batches"]
    assert entry["status"] == "collected" and entry["id"] in world.batches
    kinds = [
        e.text.split()[0] for e in RunLog(runs / "kb" / "LOG.md").entries() if e.kind == "batch"
    ]
    assert kinds == ["Resumed", "Message"]


def test_lost_creation_replies_and_failed_results_end_with_every_item_answered(
    env: dict, runs: Path, world: FakeAnthropic, batched_deu: Path
) -> None:
    # full size (200 batched calls), without the probe stage (not what is tested here)
    batched_deu.write_text(without_probes(batched_deu.read_text()))
    base = deu_world()
    # 5% of the batched subject's results errored, 2% expired
    failing = flaky_results(base, 0.07, seed=5, kinds=(Fault.overloaded(),) * 5 + (EXPIRED,) * 2)

    def handler(body: dict[str, Any]) -> Any:
        batched = body.get("model") == "claude-haiku-4-5" and not body.get("tools")
        return failing(body) if batched else base(body)

    world.handler = handler
    # every batch creation's reply is lost: the batch is made, the client hears nothing
    world.faults = lambda body, n: Fault.drop_reply() if "requests" in body else None
    out = runner.start(batched_deu, yes=True, run_id="lossy")
    assert out.status == "complete"

    creates = world.batch_creates()
    # one batch a pass: the first of all 200 calls, each next of just those that failed
    assert len(creates) == len(world.batches) >= 2
    sizes = [len(c.body["requests"]) for c in creates]
    assert sizes[0] == 200 and all(a > b for a, b in zip(sizes, sizes[1:], strict=False))
    got = responses(runs / "lossy")
    assert len(got) == 400 and all(r.error is None for r in got.values())
    with sqlite3.connect(runs / "lossy" / "records.sqlite") as db:
        tried = dict(db.execute("SELECT item, attempts FROM calls WHERE stage='collect'"))
    assert sorted(v for k, v in tried.items() if k.startswith(BATCHED)).count(1) == 200 - sizes[1]
    retried = [e.text for e in RunLog(runs / "lossy" / "LOG.md").entries() if e.kind == "retry"]
    assert retried[0].startswith(f"Pass 2 of 3: making {sizes[1]} subject calls again")
    assert "batch errored ×" in retried[0] and "batch expired ×" in retried[0]
