"""Kill the run with SIGKILL at random moments, resume each time: nothing lost, nothing paid twice.

The killed run must end with the same records as an uninterrupted run with the same seed. The fake
server must never have answered the same request twice, except one that was in flight when the
process died (its answer never reached the ledger — the one call a crash can cost).

Nothing here depends on how fast the machine is: each process gets its own API key, so the fake
server knows which process an answer went to, and after each kill (the process is dead, its ledger
still) the test reads which requests the ledger holds. An answer is lost to a kill exactly when it
went to the killed process and its request is not in the ledger the kill left.
"""

from __future__ import annotations

import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from contextlib import closing
from pathlib import Path

import pytest

from agents.client import CallResult, CallSpec, LedgerEntry, Started
from agents.pricing import price_usd
from memory import RunLog
from memory.log import HEADER
from orchestrator import runner
from orchestrator.records import Records
from orchestrator.usage import possibly_paid_text
from tests.conftest import API_KEY, DEU, ROOT, research, spawn
from tests.fakes.anthropic_server import FakeAnthropic, Seen
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.world import deu_world
from tests.limits import HANG_S
from tests.orchestrator.test_run import STAGES, snapshot


def stored_requests(run_dir: Path) -> set[str]:
    """The requests the run's ledger holds an answer for, fingerprinted as the fake server does."""
    path = run_dir / "records.sqlite"
    if not path.exists():
        return set()
    with closing(sqlite3.connect(path)) as db:
        try:
            rows = db.execute("SELECT request FROM calls WHERE error IS NULL").fetchall()
        except sqlite3.OperationalError:  # killed before the ledger had its tables
            return set()
    return {json.dumps(json.loads(request), sort_keys=True) for (request,) in rows}


def api_key(seen: Seen) -> str:
    """The API key a request came with (newer SDKs send it as a bearer token)."""
    bearer = seen.headers.get("authorization", "").removeprefix("Bearer ")
    return seen.headers.get("x-api-key", bearer)


class Progress:
    """How far the run has come: the different requests answered (by every fake it talks to).
    Not all answers: on a loaded machine a kill costs more answers in flight, and counting their
    repeats would move the later kills forward, all into the first stage."""

    def __init__(self, *servers: FakeAnthropic | FakeOpenAI) -> None:
        self.servers = servers
        self.fingerprints: dict[int, str] = {}  # each request's, worked out once

    def __call__(self) -> int:
        for seen in (s for server in self.servers for s in server.answered()):
            if id(seen) not in self.fingerprints:
                self.fingerprints[id(seen)] = seen.fingerprint
        return len(set(self.fingerprints.values()))


def kill_at(proc: subprocess.Popen, progress: Progress, threshold: int, rng: random.Random) -> bool:
    """SIGKILL `proc` soon after the run has made `threshold` calls (at `threshold` 0: somewhere
    in start-up, design or the checkpoint); False when it had already exited."""
    guard = time.monotonic() + HANG_S
    while proc.poll() is None and progress() < threshold:
        assert time.monotonic() < guard, f"the run hung before {threshold} answers"
        time.sleep(0.01)
    if threshold == 0:
        time.sleep(rng.uniform(1.0, 3.5))
    time.sleep(rng.uniform(0.0, 0.15))
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=HANG_S)
    return killed


def kill_and_resume(
    env: dict, runs: Path, server: FakeAnthropic, calls: int
) -> dict[str, set[str]]:
    """Run the pilot as `killed`, killed at random moments and resumed until it completes.
    Returns, for each process killed (by its API key), the requests its ledger held after."""
    rng = random.Random(20261125)
    # one kill before any call, then kills spread over the run's `calls`
    thresholds = [0] + sorted(rng.sample(range(1, calls), 5))
    progress = Progress(server)
    start = ["run", str(DEU), "--pilot", "--yes", "--run-id", "killed"]
    resume = ["resume", "killed", "--yes"]
    stored_at_kill: dict[str, set[str]] = {}
    for n, threshold in enumerate(thresholds):
        key = f"{API_KEY}-process{n}"
        # a kill before the run directory was complete left no run: start it again
        args = resume if (runs / "killed" / "manifest.json").exists() else start
        proc = spawn(*args, env={**env, "ANTHROPIC_API_KEY": key}, output=runs.parent / key)
        if kill_at(proc, progress, threshold, rng):
            stored_at_kill[key] = stored_requests(runs / "killed")
    final = spawn(*resume, env={**env, "ANTHROPIC_API_KEY": f"{API_KEY}-final"})
    _, err = final.communicate(timeout=HANG_S)
    assert final.returncode == 0, err
    return stored_at_kill


def assert_only_kills_cost_a_repeat(
    answered: dict[str, list[Seen]], stored_at_kill: dict[str, set[str]]
) -> None:
    """Every answer but the last of a request went to a process that was killed before its
    ledger held that request — and each kill cost at most one answer of a request."""
    for fingerprint, repeats in answered.items():
        lost = [api_key(seen) for seen in repeats[:-1]]
        for key in lost:
            assert key in stored_at_kill and fingerprint not in stored_at_kill[key], (
                "a request was answered twice although its first answer was not lost to a "
                f"kill: {fingerprint[:300]}"
            )
        assert max(Counter(lost).values(), default=0) <= 1, (
            f"one process lost two answers of the same request: {fingerprint[:300]}"
        )


def test_sigkill_at_random_moments_then_resume(env: dict, runs: Path, world: FakeAnthropic) -> None:
    reference = runner.start(DEU, pilot=True, yes=True, run_id="reference")
    assert reference.status == "complete"
    expected = snapshot(runs / "reference")
    # 24 subject calls, 8 evaluators × 4 turns (read_protocol, comprehension_check, get_batch,
    # submit_verdicts) and the analyst's
    calls = len(world.answered())
    assert calls == 24 + 8 * 4 + 1

    server = FakeAnthropic(deu_world(), latency=0.08).start()
    try:
        env = {**env, "ANTHROPIC_BASE_URL": server.url}
        stored_at_kill = kill_and_resume(env, runs, server, calls)
    finally:
        server.stop()

    assert len(stored_at_kill) >= 5
    run_dir = runs / "killed"
    assert snapshot(run_dir) == expected

    answered: dict[str, list[Seen]] = defaultdict(list)
    for seen in server.answered():
        answered[seen.fingerprint].append(seen)
    # the ledger's requests are the server's (else "not in the ledger" below would prove nothing)
    assert stored_requests(run_dir) <= set(answered)
    assert_only_kills_cost_a_repeat(answered, stored_at_kill)
    subjects = {f for f, seen in answered.items() if not seen[0].body.get("tools")}
    assert len(subjects) == 24
    # a killed evaluator restarts in a fresh conversation from its records and notes: new
    # requests, never the old ones again
    restarts = [f for f, seen in answered.items() if "continuing work" in f]
    assert len(answered) >= calls and (restarts or len(answered) == calls)

    text = (run_dir / "LOG.md").read_text()
    entries = RunLog(run_dir / "LOG.md").entries()
    assert [e.number for e in entries] == list(range(1, len(entries) + 1))
    assert len(HEADER.findall(text)) == len(entries) and text.endswith("\n\n")
    assert all(e.text for e in entries)

    summary = (run_dir / "SUMMARY.md").read_text()
    assert "**complete**" in summary
    assert f"Reflects LOG entries up to: {entries[-1].number}\n" in summary
    for stage in STAGES:
        assert f"| {stage} | done |" in summary
    assert "| collect | done | responses=24, failed=0 |" in summary


DIES_BEFORE_CHECKPOINT = """
import os, sys
from langgraph.checkpoint.sqlite import SqliteSaver
from orchestrator import runner

put = SqliteSaver.put

def put_or_die(self, config, checkpoint, metadata, new_versions):
    if checkpoint["channel_values"].get("stage") == "collect":
        os._exit(137)  # as a SIGKILL would: collect's writes are saved, its checkpoint is not
    return put(self, config, checkpoint, metadata, new_versions)

SqliteSaver.put = put_or_die
runner.start(sys.argv[1], pilot=True, yes=True, run_id="cut")
"""


def test_a_kill_between_a_stage_and_its_checkpoint_resumes_every_later_stage(
    env: dict, runs: Path, world: FakeAnthropic
) -> None:
    cmd = [sys.executable, "-c", DIES_BEFORE_CHECKPOINT, str(DEU)]
    died = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert died.returncode == 137, died.stderr[-3000:]
    run_dir = runs / "cut"
    assert "| collect | done | responses=24, failed=0 |" in (run_dir / "SUMMARY.md").read_text()
    subject_calls = len(world.answered())

    out = runner.resume("cut", yes=True)

    assert out.status == "complete"
    summary = (run_dir / "SUMMARY.md").read_text()
    for stage in STAGES:
        assert f"| {stage} | done |" in summary
    assert (run_dir / "artifacts" / "analysis.json").exists() and (run_dir / "report.md").exists()
    # the subject calls answered before the kill came from the ledger, not from the API again
    subjects = [s for s in world.answered() if not s.body.get("tools")]
    assert subject_calls == len(subjects) == 24


SUBJECTS_IN_FLIGHT = 2 * 8
"""The pilot's two subjects have 12 calls each and send at most 8 at once (their concurrency)."""


def held_subject_calls(server: FakeAnthropic) -> list[Seen]:
    """Subject requests (no tools) the fake has received and not answered."""
    return [s for s in list(server.requests) if s.outcome == "pending" and not s.body.get("tools")]


def test_calls_in_flight_at_a_kill_show_as_possibly_paid(
    env: dict, runs: Path, world: FakeAnthropic
) -> None:
    """A kill while subject calls are in flight: their answers never reach the ledger, but they
    may have been paid. The resumed run shows them, counted and priced, as possibly paid."""
    release = threading.Event()
    answer = world.handler

    def holding(body: dict) -> object:
        if not body.get("tools"):
            release.wait(HANG_S)  # a subject call: held until the process that sent it is dead
        return answer(body)

    world.handler = holding
    start = ["run", str(DEU), "--pilot", "--yes", "--run-id", "paid"]
    proc = spawn(*start, env=env, output=runs.parent / "paid.out")
    try:
        guard = time.monotonic() + HANG_S
        # every slot holds a call the fake has received: none is between started and sent
        while len(held_subject_calls(world)) < SUBJECTS_IN_FLIGHT:
            assert proc.poll() is None, (runs.parent / "paid.out").read_text()[-3000:]
            assert time.monotonic() < guard, "the subject calls never filled their slots"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=HANG_S)
        # counted while still held: a held call answered now would go to a dead process
        in_flight = len(held_subject_calls(world))
        assert not world.answered()  # every subject call the killed process sent was held
    finally:
        release.set()
    assert in_flight == SUBJECTS_IN_FLIGHT

    resumed = research("resume", "paid", "--yes", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    run_dir = runs / "paid"
    summary = (run_dir / "SUMMARY.md").read_text()
    assert "**complete**" in summary
    sentence = (
        f"{in_flight} calls possibly paid (in flight when a process was killed or interrupted, "
        "never recorded): ≈ $"
    )
    line = next(ln for ln in summary.splitlines() if sentence in ln)
    assert line.endswith(f"; by stage: collect {in_flight}")
    cost = float(re.search(r"≈ \$([0-9.]+)", line).group(1))
    assert cost > 0
    for report in ("report.md", "report.html"):
        assert sentence in (run_dir / report).read_text()
    log = (run_dir / "LOG.md").read_text()
    assert f"{in_flight} calls were in flight when an earlier process died" in log
    # the resumed run made the held calls again; its own calls left nothing started
    rec = Records(run_dir / "records.sqlite")
    rows = rec._all("SELECT stage, orphaned, COUNT(*) AS n FROM started GROUP BY stage, orphaned")
    assert [tuple(r) for r in rows] == [("collect", 1, in_flight)]
    assert len(rec.responses()) == 24


def entry(key: str, spec: CallSpec, model: str, output_tokens: int) -> LedgerEntry:
    result = CallResult(key, [{"type": "text", "text": "x"}], "end_turn", 10, output_tokens)
    return LedgerEntry(result, spec, model, {}, {}, 0.1)


def test_possibly_paid_calls_are_estimated_from_answered_calls_of_their_stage_and_model(
    tmp_path: Path,
) -> None:
    rec = Records(tmp_path / "records.sqlite")
    sonnet, haiku = "claude-sonnet-4-6", "claude-haiku-4-5"
    rec.store(entry("answered", CallSpec("collect", "i0", "subject"), sonnet, 100))
    rec.store(entry("answered-2", CallSpec("collect", "i9", "subject"), sonnet, 200))
    rec.begin("online", [Started("k1", CallSpec("collect", "i1", "subject"), sonnet, 1000, 500)])
    batch = [
        Started(f"k{i}", CallSpec("collect", f"i{i}", "subject"), haiku, 2000, 300, 0.5)
        for i in (2, 3)
    ]
    rec.begin("batch", batch)  # a message batch: all its calls, before its create request
    judging = CallSpec("evaluate", "batch-1", "evaluator-1")
    rec.begin("local", [Started("k4", judging, "smollm2", 100, 50, 0.0)])
    rec.begin("unknown", [Started("k5", judging, "mystery-model", 100, 50)])
    # this process's calls in flight are not possibly paid; those a new process finds are
    assert rec.possibly_paid() == {}
    assert rec.orphan_started() == 5
    assert rec.orphan_started() == 0

    paid = rec.possibly_paid()
    collect, evaluate = paid["collect"], paid["evaluate"]
    # sonnet's output: the mean of its answered calls; haiku has none, so its max_tokens
    assert (collect.calls, collect.input_tokens, collect.output_tokens) == (3, 5000, 150 + 600)
    expected = price_usd(sonnet, 1000, 150) + 2 * 0.5 * price_usd(haiku, 2000, 300)
    assert collect.cost_usd == pytest.approx(expected) and collect.unpriced == 0
    assert (evaluate.calls, evaluate.cost_usd, evaluate.unpriced) == (2, 0.0, 1)
    text = possibly_paid_text(paid)
    assert text is not None and text.startswith("5 calls possibly paid (in flight when")
    assert text.endswith(f"≈ ${expected:.4f} (+1 unpriced); by stage: collect 3, evaluate 2")

    # a batch found in flight on resume is collected, not paid again: storing its results
    # under its attempt clears them; another attempt of the same key clears nothing
    rec.store(entry("k2", CallSpec("collect", "i2", "subject"), haiku, 40), "batch")
    rec.store(entry("k3", CallSpec("collect", "i3", "subject"), haiku, 40), "another")
    assert rec.possibly_paid()["collect"].calls == 2
    assert possibly_paid_text({}) is None


def test_a_records_file_from_before_started_calls_opens_with_none(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite"
    Records(path).close()
    with closing(sqlite3.connect(path)) as db:
        db.execute("DROP TABLE started")
    rec = Records(path)
    assert rec.possibly_paid() == {} and rec.orphan_started() == 0
