"""With a remote judge, the probe stage's readouts run beside the evaluators, and nothing else
changes: the same readouts and verdicts as one stage after the other, both progress bars live at
once, one LOG entry per stage, and a run killed in the middle asks the worker only for the
readouts it had not stored.

The worker is the real one behind a recording proxy (tests/fakes/worker_proxy.py), so the test
sees when each readout was asked for and how often; the judges are the fake Anthropic world's.
Where timing matters the fakes wait on each other (judges for the worker's readouts, the
worker's readouts for a judge's answer): that can only finish if the two run at once, whatever
the machine's load.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memory import RunLog
from orchestrator import runner
from orchestrator.records import Records, VerdictStatus
from tests.conftest import DEU, spawn
from tests.fakes.anthropic_server import FakeAnthropic, Seen
from tests.fakes.worker_proxy import Passed, WorkerProxy
from tests.fakes.world import is_agent, is_analyst
from tests.limits import HANG_S
from tests.orchestrator.test_run import STAGES, snapshot
from tests.truesight.workers import Worker

READOUTS = ("surprisal", "author", "followup", "linear:deception", "linear:performative")
PROBE_BATCH = 4
"""Responses per readout request: the pilot's 24 make six requests, to interleave with."""

Key = tuple[str, str, str]


@pytest.fixture
def protocol(tmp_path: Path) -> Path:
    """DEU with the probe stage asking for four responses at a time (its data files beside)."""
    shutil.copytree(DEU.parent / "data", tmp_path / "data")
    text = DEU.read_text().replace("\nprobes:\n", f"\nprobes:\n  batch_size: {PROBE_BATCH}\n", 1)
    path = tmp_path / "deu.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def proxy(
    env: dict[str, str], probe_worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> Iterator[WorkerProxy]:
    with WorkerProxy(probe_worker.url) as p:
        monkeypatch.setenv("RESEARCH_WORKER_URL", p.url)
        env["RESEARCH_WORKER_URL"] = p.url
        yield p


class Bars:
    """A progress display that notes, per stage, when its bar started and stopped."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.stopped: dict[str, float] = {}
        self.done: Counter[str] = Counter()
        self.totals: dict[str, int] = {}

    def start(self, stage: str, total: int, done: int = 0) -> None:
        self.started.setdefault(stage, time.monotonic())
        self.totals[stage], self.done[stage] = total, done

    def advance(self, stage: str, n: int = 1) -> None:
        self.done[stage] += n

    def stop(self, stage: str) -> None:
        self.stopped[stage] = time.monotonic()


def asked(seen: Seen) -> list[Key]:
    """The readouts one request asked for: (text, context it is read after, readout name)."""
    body = seen.body
    contexts = body.get("contexts") or [""] * len(body["texts"])
    return [
        (_sha(text), _sha(context) if probe["context"] else "", probe["name"])
        for text, context in zip(body["texts"], contexts, strict=True)
        for probe in body["probes"]
    ]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    guard = time.monotonic() + HANG_S
    while not condition():
        assert time.monotonic() < guard, f"waited {HANG_S} s for {what}"
        time.sleep(0.01)


def is_judge(body: dict[str, Any]) -> bool:
    return is_agent(body) and not is_analyst(body)


def is_stage(seen: Passed) -> bool:
    """A readouts request of the stage (every probe on the run's responses), not one of the
    zero-shot readouts on a transfer set that probe validity asks for while training."""
    if seen.path != "/v1/readouts":
        return False
    return {p["name"] for p in seen.body.get("probes", [])} == set(READOUTS)


def stage_readouts(proxy: WorkerProxy) -> list[Passed]:
    return [r for r in proxy.readouts() if is_stage(r)]


def judge_requests(world: FakeAnthropic) -> list[Seen]:
    """The evaluators' requests the fake answered."""
    return [s for s in world.answered() if is_judge(s.body)]


def test_readouts_run_beside_the_judges_with_the_same_results(
    env: dict,
    runs: Path,
    world: FakeAnthropic,
    proxy: WorkerProxy,
    protocol: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # one stage after the other, as with a local judge
    monkeypatch.setenv("RESEARCH_OVERLAP_PROBES", "0")
    assert runner.start(protocol, pilot=True, yes=True, run_id="sequential").status == "complete"
    sequential_judges = judge_requests(world)
    assert len(stage_readouts(proxy)) == 24 // PROBE_BATCH
    assert max(r.answered for r in stage_readouts(proxy)) < min(
        s.received for s in sequential_judges
    )

    # beside each other: the judges' first half waits for a readout, their second half for all
    # of them, and the readout requests after the first wait for a judge's answer
    monkeypatch.setenv("RESEARCH_OVERLAP_PROBES", "1")
    world.requests.clear()
    proxy.requests.clear()
    judged, base = threading.Event(), world.handler
    arrived: list[dict] = []

    def judge_beside_the_readouts(body: dict[str, Any]) -> Any:
        if is_judge(body):
            arrived.append(body)
            wanted = 1 if len(arrived) <= 16 else 24 // PROBE_BATCH
            wait_for(lambda: len(stage_readouts(proxy)) >= wanted, f"{wanted} readout requests")
            judged.set()
        return base(body)

    def readouts_after_a_judge(seen: Passed) -> None:
        if is_stage(seen) and stage_readouts(proxy):
            judged.wait(HANG_S)

    world.handler, proxy.gate = judge_beside_the_readouts, readouts_after_a_judge
    bars = Bars()
    out = runner.start(protocol, pilot=True, yes=True, run_id="overlapped", progress=bars)
    assert out.status == "complete"

    readouts, judges = stage_readouts(proxy), judge_requests(world)
    assert len(readouts) == 24 // PROBE_BATCH and len(judges) == len(sequential_judges)
    # every readout request but the first went to the worker between the first and the last
    # judge request
    first, last = min(s.received for s in judges), max(s.received for s in judges)
    assert all(first < r.forwarded < last for r in readouts[1:])
    # the evaluators were offered the same tools (the trained probes among them): the probes
    # were trained before any evaluator started
    tools = {str(s.body["tools"]) for s in judges}
    assert tools == {str(s.body["tools"]) for s in sequential_judges}

    # the same records either way
    assert snapshot(runs / "overlapped") == snapshot(runs / "sequential")
    probes = snapshot(runs / "overlapped")["probes"]
    assert len(probes) == 24 * len(READOUTS) and all(error is None for *_, error in probes)

    # both bars were live at once, each run to its total
    assert bars.started["evaluate"] < bars.stopped["probe"] < bars.stopped["evaluate"]
    assert bars.done["probe"] == bars.totals["probe"] == 24
    assert bars.done["evaluate"] == bars.totals["evaluate"] == 24
    # LOG.md: each stage's entry once, the probe stage's before evaluate's, and why it overlapped
    log = RunLog(runs / "overlapped" / "LOG.md").entries()
    assert [e.stage for e in log if e.kind == "stage_done"] == STAGES
    assert any(e.stage == "probe" and "beside the evaluators" in e.text for e in log)
    plan = RunLog(runs / "sequential" / "LOG.md").entries()
    assert not any("beside the evaluators" in e.text for e in plan)


def test_a_run_killed_while_both_run_resumes_asking_only_for_missing_readouts(
    env: dict, runs: Path, world: FakeAnthropic, proxy: WorkerProxy, protocol: Path
) -> None:
    release, held = threading.Event(), threading.Event()
    base = world.handler

    def hold_judges(body: dict[str, Any]) -> Any:
        if is_judge(body) and len(judge_requests(world)) >= 12:
            release.wait(HANG_S)  # some judges answered, the others held: evaluators mid-batch
        return base(body)

    def hold_third_readout(seen: Passed) -> None:
        if is_stage(seen) and len(stage_readouts(proxy)) >= 2 and not release.is_set():
            held.set()
            release.wait(HANG_S)

    world.handler, proxy.gate = hold_judges, hold_third_readout
    start = ["run", str(protocol), "--pilot", "--yes", "--run-id", "cut"]
    proc = spawn(*start, env=env, output=runs.parent / "cut.out")
    try:
        wait_for(lambda: held.is_set() or proc.poll() is not None, "the third readout request")
        wait_for(
            lambda: len([s for s in world.requests if s.outcome == "pending"]) > 0,
            "a judge request held",
        )
        assert proc.poll() is None, (runs.parent / "cut.out").read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=HANG_S)
        killed_at = time.time()
    finally:
        release.set()
    answered = [k for r in stage_readouts(proxy)[:2] for k in asked(r)]
    rec = Records(runs / "cut" / "records.sqlite")
    try:
        stages = rec.stages()
        assert "probe" not in stages and "evaluate" not in stages  # killed inside both
        assert len(rec.probe_results()) == len(answered)  # the two answered batches, stored
    finally:
        rec.close()

    world.handler, proxy.gate = base, None
    resumed = spawn("resume", "cut", "--yes", env=env)
    _, err = resumed.communicate(timeout=HANG_S)
    assert resumed.returncode == 0, err[-3000:]

    snap = snapshot(runs / "cut")
    items = {i.id for i in snap["items"]}
    assert {(i, p) for i, p, _, _ in snap["probes"]} == {(i, p) for i in items for p in READOUTS}
    assert all(error is None for *_, error in snap["probes"])
    # the resumed run asked for the readouts it lacked and no others: with the two batches
    # answered before the kill, exactly one request per readout stored (replicates can share a
    # text, so readouts are counted, not compared)
    after = [k for r in stage_readouts(proxy) if r.received > killed_at for k in asked(r)]
    assert len(answered) + len(after) == len(snap["probes"]) == 24 * len(READOUTS)
    lost = Counter(asked(stage_readouts(proxy)[2]))  # the request the kill cut off
    assert Counter(after) >= lost
    # ... and every item has its verdict, as an uninterrupted run's
    assert {v.item_id for v in snap["verdicts"]} == items
    assert {v.status for v in snap["verdicts"]} == {VerdictStatus.SCORED}
    log = RunLog(runs / "cut" / "LOG.md").entries()
    assert [e.stage for e in log if e.kind == "stage_done"] == STAGES
    assert "**complete**" in (runs / "cut" / "SUMMARY.md").read_text()
