"""An API that keeps failing: what failed is made again, never recorded as data.

Through the real SDK against the fake Anthropic world: a judge outage leaves items *pending*
(not unscored) and `--yes` does not approve past them; a subject call that fails every retry
stops the run and `resume` makes it; batch results that errored or expired go out again in a
batch of just those.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from memory import RunLog
from orchestrator import runner
from orchestrator.errors import UserError
from orchestrator.records import Records, VerdictStatus
from tests.conftest import DEU, research, without_probes
from tests.fakes.anthropic_server import FakeAnthropic, Fault, random_faults
from tests.fakes.world import deu_world, evaluator_of, is_analyst


def records(run_dir: Path) -> Records:
    return Records(run_dir / "records.sqlite")


def is_subject(body: dict[str, Any]) -> bool:
    return not body.get("tools") and not is_analyst(body)


def test_a_judge_outage_leaves_items_pending_and_resume_judges_them(
    env: dict, runs: Path, world: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESEARCH_MAX_RETRIES", "0")  # the SDK gives up at once: quicker
    outage = {"on": True}
    base = deu_world()

    def handler(body: dict[str, Any]) -> Any:
        if outage["on"] and body.get("tools") and evaluator_of(body) == "evaluator-2":
            return Fault.overloaded()
        return base(body)

    world.handler = handler
    out = runner.start(DEU, pilot=True, yes=True, run_id="outage")
    assert out.status == "awaiting_approval" and out.waiting_at == "evaluate"
    assert out.pending is not None and "HTTP 529" in out.pending

    rec = records(runs / "outage")
    try:
        items = {i.id for i in rec.items()}
        verdicts = rec.verdicts()
        pending = [v for v in verdicts if v.status == VerdictStatus.PENDING]
        assert pending and {v.evaluator for v in pending} == {"evaluator-2"}
        assert all("HTTP 529" in (v.reason or "") for v in pending)
        # every item is scored or pending: none is unscored because the API failed
        assert {v.item_id for v in verdicts} == items
        assert {v.status for v in verdicts} == {VerdictStatus.SCORED, VerdictStatus.PENDING}
        waiting = {v.item_id for v in rec.pending()}  # any role: a second look waits too
        assert f"{len(waiting)} items pending" in out.pending
        assert rec.decision("evaluate") is None  # --yes did not approve past them
    finally:
        rec.close()
    summary = (runs / "outage" / "SUMMARY.md").read_text()
    assert f"{len(waiting)} items pending" in summary and "research resume outage --yes" in summary
    # a person may go on without them, but only by saying so
    with pytest.raises(UserError, match="--leave-pending"):
        runner.approve("outage")
    log = RunLog(runs / "outage" / "LOG.md").entries()
    retries = [e for e in log if e.kind == "retry" and e.actor == "evaluator-2"]
    # each conversation's failed turn was sent again (twice) before the items went pending,
    # and the orchestrator sent the stage back for them once by itself
    assert len(retries) == 2 * 2 and all("HTTP 529" in e.text for e in retries)
    assert [e.actor for e in log if e.kind == "retry" and e.stage == "evaluate"].count(
        "orchestrator"
    ) == 1
    assert any(e.kind == "blocked" and "pending" in e.text for e in log)

    outage["on"] = False
    assert runner.resume("outage", yes=True).status == "complete"
    rec = records(runs / "outage")
    try:
        assert not rec.pending()
        assert all(v.status == VerdictStatus.SCORED for v in rec.verdicts(None))
        assert len(rec.verdicts()) == len(rec.items())
    finally:
        rec.close()
    analysis = json.loads((runs / "outage" / "artifacts" / "analysis.json").read_text())
    assert analysis["totals"]["unscored"] == 0
    # the probe stage read beside the first pass and was not run again by the passes after it
    done = [e.stage for e in RunLog(runs / "outage" / "LOG.md").entries() if e.kind == "stage_done"]
    assert done.count("probe") == 1 and done.index("probe") < done.index("evaluate")


def test_a_subject_call_that_fails_every_retry_stops_the_run_and_resume_makes_it(
    env: dict, runs: Path, world: FakeAnthropic
) -> None:
    env = {**env, "RESEARCH_MAX_RETRIES": "0"}
    broken = {"on": True}
    victim: list[str] = []
    lock = threading.Lock()
    base = deu_world()

    def handler(body: dict[str, Any]) -> Any:
        if is_subject(body):
            with lock:
                prompt = json.dumps(body["messages"])
                victim[:] = victim or [prompt]  # the first subject call fails, again and again
                if broken["on"] and prompt == victim[0]:
                    return Fault.overloaded()
        return base(body)

    world.handler = handler
    r = research("run", str(DEU), "--pilot", "--yes", "--run-id", "subj", env=env)
    assert r.returncode == 4, r.stderr  # the API kept failing (3 is waiting at a checkpoint)
    assert "Traceback" not in r.stderr
    run_dir = runs / "subj"
    rec = records(run_dir)
    try:  # the stimulus's replicates share its prompt: each of them fails
        failed = [i.id for i in rec.items() if asked(i.user) == victim[0]]
    finally:
        rec.close()
    n = len(failed)
    named = ", ".join(failed)  # the log and the error say which items are missing
    assert f"{n} of 24 subject calls still fail after 3 passes (HTTP 529 ×{n}: items " in r.stderr
    assert all(i in r.stderr for i in failed)
    assert "continue with `research resume subj`" in r.stderr
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "failed"
    log = RunLog(run_dir / "LOG.md").entries()
    kinds = [e.kind for e in log if e.stage == "collect"]
    assert kinds == ["start", "retry", "retry", "incomplete", "error"]
    assert not [e for e in log if e.stage == "screen"]  # nothing went on without the response
    sent = [s for s in world.requests if json.dumps(s.body.get("messages")) == victim[0]]
    assert len(sent) == 3 * n  # one request a pass each: the SDK was told not to retry

    broken["on"] = False
    r = research("resume", "subj", "--yes", env=env)
    assert r.returncode == 0 and "complete" in r.stdout, r.stderr
    rec = records(run_dir)
    try:
        responses = rec.responses()
        assert len(responses) == 24 and all(x.error is None for x in responses.values())
    finally:
        rec.close()
    with sqlite3.connect(run_dir / "records.sqlite") as db:
        rows = db.execute(
            "SELECT item, attempts, error FROM calls WHERE stage='collect' AND attempts > 1"
        ).fetchall()
    # three failed requests and the answer, each in the ledger
    assert sorted(rows) == [(i, 4, None) for i in sorted(failed)]
    log = RunLog(run_dir / "LOG.md").entries()
    again = [e.text for e in log if e.stage == "collect" and e.kind == "start"][-1]
    assert f"{n} of 24 subject calls to make. {n} of them failed before (HTTP 529 ×{n}: " in again
    assert named in again


def asked(user: str) -> str:
    """A subject request's messages as the handler above keys them."""
    return json.dumps([{"role": "user", "content": user}])


def test_a_full_run_at_30_percent_faults_scores_every_item(
    env: dict, runs: Path, world: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the flagship protocol at full size, without its probe stage (not what is tested here)
    protocol = tmp_path / "deu.yaml"
    protocol.write_text(without_probes(DEU.read_text()))
    # two SDK retries: some calls exhaust them, so the follow-up passes and tries are exercised
    monkeypatch.setenv("RESEARCH_MAX_RETRIES", "2")
    world.faults = random_faults(0.3, seed=11, slow_s=0.3)

    out = runner.start(protocol, yes=True, run_id="faults")
    rec = records(runs / "faults")
    try:
        verdicts = rec.verdicts()
        assert len(verdicts) == len(rec.items()) == 400
        statuses = Counter(v.status for v in verdicts)
        # scored or pending: an outage never made a verdict
        assert statuses[VerdictStatus.SCORED] + statuses[VerdictStatus.PENDING] == 400, statuses
        assert all(r.error is None for r in rec.responses().values())
    finally:
        rec.close()
    if out.status != "complete":
        assert out.pending is not None
        out = runner.resume("faults", yes=True)
    assert out.status == "complete"
    analysis = json.loads((runs / "faults" / "artifacts" / "analysis.json").read_text())
    assert analysis["totals"] == {"items": 400, "scored": 400, "unscored": 0}
    faults = Counter(r.outcome for r in world.requests if r.outcome.startswith("fault"))
    posts = [r for r in world.requests if r.method == "POST"]
    assert sum(faults.values()) > 0.2 * len(posts) and len(faults) == 4, faults  # each kind
    with sqlite3.connect(runs / "faults" / "records.sqlite") as db:
        [(exhausted,)] = db.execute("SELECT COUNT(*) FROM calls WHERE attempts > 3").fetchall()
    assert exhausted > 0  # calls that outlasted the SDK's retries were made again


def test_a_subject_whose_every_call_is_refused_stops_the_run_until_it_is_fixed(
    env: dict, runs: Path, world: FakeAnthropic
) -> None:
    base, wrong = deu_world(), {"model": True}

    def handler(body: dict[str, Any]) -> Any:  # e.g. a model name the account cannot use
        if wrong["model"] and is_subject(body) and body["model"] == "claude-haiku-4-5":
            return Fault.invalid_request()
        return base(body)

    world.handler = handler
    with pytest.raises(UserError, match=r"refused every call to claude-haiku-4-5 \(HTTP 400 ×12"):
        runner.start(DEU, pilot=True, yes=True, run_id="refused")
    # refused requests are not sent again within the run: one each
    refused = [r for r in world.requests if r.outcome == "fault:invalid_request"]
    assert len(refused) == 12
    assert json.loads((runs / "refused" / "manifest.json").read_text())["status"] == "failed"

    wrong["model"] = False  # fixed: a resume makes every failed call once more
    assert runner.resume("refused", yes=True).status == "complete"
    rec = records(runs / "refused")
    try:
        assert all(r.error is None for r in rec.responses().values())
    finally:
        rec.close()
