"""Kill the run with SIGKILL at random moments, resume each time: nothing lost, nothing paid twice.

The killed run must end with the same records as an uninterrupted run with the same seed. The fake
server must never have answered the same request twice, except one that was in flight when the
process died (its answer never reached the ledger — the one call a crash can cost).
"""

from __future__ import annotations

import random
import signal
import time
from collections import defaultdict
from pathlib import Path

from memory import RunLog
from memory.log import HEADER
from orchestrator import runner
from tests.conftest import DEU, spawn
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.world import deu_world
from tests.orchestrator.test_run import STAGES, snapshot

GRACE_S = 0.5
"""Time between the server's answer and the ledger write that a kill may fall into."""


def test_sigkill_at_random_moments_then_resume(env: dict, runs: Path) -> None:
    reference = runner.start(DEU, pilot=True, yes=True, run_id="reference")
    assert reference.status == "complete"
    expected = snapshot(runs / "reference")

    rng = random.Random(20261125)
    server = FakeAnthropic(deu_world(), latency=0.08).start()
    env = {**env, "ANTHROPIC_BASE_URL": server.url}
    kills: list[float] = []
    try:
        # 24 subject calls + 8 evaluators × 4 turns (read_protocol, comprehension_check,
        # get_batch, submit_verdicts) in the pilot
        total = 24 + 8 * 4
        # one kill before any call (start-up, design, checkpoint), then kills spread over calls
        thresholds = [0] + sorted(rng.sample(range(1, total), 5))
        start = ["run", str(DEU), "--pilot", "--yes", "--run-id", "killed"]
        resume = ["resume", "killed", "--yes"]
        for threshold in thresholds:
            # a kill before the run directory was complete left no run: start it again
            args = resume if (runs / "killed" / "manifest.json").exists() else start
            proc = spawn(*args, env=env)
            started = time.monotonic()
            while proc.poll() is None and len(server.answered()) < threshold:
                time.sleep(0.01)
            if threshold == 0:
                time.sleep(rng.uniform(1.0, 3.5))
            time.sleep(rng.uniform(0.0, 0.15))
            if proc.poll() is None:
                kills.append(time.time())
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            assert time.monotonic() - started < 60
        final = spawn(*resume, env=env)
        out, err = final.communicate(timeout=120)
        assert final.returncode == 0, err
    finally:
        server.stop()

    assert len(kills) >= 5
    run_dir = runs / "killed"
    assert snapshot(run_dir) == expected

    answered: dict[str, list] = defaultdict(list)
    for seen in server.answered():
        answered[seen.fingerprint].append(seen)
    for repeats in answered.values():
        for first in repeats[:-1]:  # every answer but the last was lost to a kill
            assert any(first.received <= k <= first.answered + GRACE_S for k in kills), (
                "a request was answered twice although its first answer was not in flight at a "
                f"kill: {first.fingerprint[:300]}"
            )
    subjects = {f for f, seen in answered.items() if not seen[0].body.get("tools")}
    assert len(subjects) == 24
    # a killed evaluator restarts in a fresh conversation from its records and notes: new
    # requests, never the old ones again
    restarts = [f for f, seen in answered.items() if "continuing work" in f]
    assert len(answered) >= total and (restarts or len(answered) == total)

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
