"""Whole runs against the fake Anthropic world: what a researcher sees on disk and on screen."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import git
import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from memory import RunLog
from orchestrator import runner
from orchestrator.graph import build_graph
from orchestrator.records import Records
from orchestrator.rundir import RunDir
from tests.conftest import API_KEY, DEU, SINCERITY, copy_run, research
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.world import agent_judge, deu_world, is_analyst
from tests.limits import HANG_S

STAGES = ["design", "collect", "screen", "probe", "evaluate", "analyze", "report"]


def snapshot(run_dir: Path) -> dict:
    """Everything a run produced that must not depend on how often it was interrupted."""
    rec = Records(run_dir / "records.sqlite")
    try:
        return {
            "items": rec.items(),
            "responses": rec.responses(),
            "screen": rec.screen(),
            "batches": rec.batches(),
            "verdicts": rec.verdicts(),
            "probes": sorted(
                (r.item_id, r.probe, json.dumps(r.result, sort_keys=True), r.error)
                for r in rec.probe_results()
            ),
        }
    finally:
        rec.close()


def test_full_pilot_run_with_yes(env: dict, runs: Path, world: FakeAnthropic) -> None:
    out = runner.start(DEU, pilot=True, yes=True, run_id="pilot")
    assert out.status == "complete"
    run_dir = runs / "pilot"
    snap = snapshot(run_dir)
    assert len(snap["items"]) == 24 and len(snap["responses"]) == 24
    assert {v.status for v in snap["verdicts"]} == {"scored"}
    assert {v.item_id for v in snap["verdicts"]} == {i.id for i in snap["items"]}
    # the evaluators fanned out: one batch per evaluator, every evaluator seen by the fake judge,
    # each reading the protocol, passing its check, then judging through get_batch
    judge_calls = [r for r in world.requests if r.body.get("tools") and not is_analyst(r.body)]
    by_evaluator: dict[str, list[str]] = {}
    for r in judge_calls:
        first = r.body["messages"][0]["content"]
        first = first if isinstance(first, str) else first[0]["text"]
        name = first.split()[2].rstrip(".,")
        last = r.body["messages"][-1]["content"]
        by_evaluator.setdefault(name, []).append(
            "start" if len(r.body["messages"]) == 1 else str(len(last))
        )
    assert len(snap["batches"]) == 8 and sorted(by_evaluator) == [
        f"evaluator-{k}" for k in range(1, 9)
    ]
    tools_used = [
        b["name"]
        for r in judge_calls
        for m in r.body["messages"]
        if m["role"] == "assistant"
        for b in m["content"]
        if b.get("type") == "tool_use"
    ]
    assert {"read_protocol", "comprehension_check", "get_batch"} == set(tools_used)
    everything = Records(run_dir / "records.sqlite").verdicts(None)
    roles = [v.role for v in everything]
    assert roles.count("primary") == 24 and roles.count("duplicate") == 8
    assert roles.count("overlap") == round(0.1 * 24)
    log = RunLog(run_dir / "LOG.md").entries()
    assert [e.kind for e in log if e.kind == "stage_done"] == ["stage_done"] * 7
    assert [e.stage for e in log if e.kind == "stage_done"] == STAGES
    summary = (run_dir / "SUMMARY.md").read_text()
    assert "**complete**" in summary and f"up to: {log[-1].number}" in summary
    report = (run_dir / "report.md").read_text()
    assert "## Results: detected (primary outcome)" in report
    assert "claude-haiku | deu | planted" in report
    messages = git.Repo(run_dir).git.log("--format=%s").splitlines()[::-1]
    for stage in STAGES:
        assert sum(m.startswith(f"{stage}: done") for m in messages) == 1, messages
    for cp in ("design", "evaluate", "report"):
        assert f"{cp}: approved by --yes" in messages
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["protocol_sha256"]) == 64
    assert "code_commit" in manifest and "code_dirty" in manifest
    analysis = json.loads((run_dir / "artifacts" / "analysis.json").read_text())
    assert analysis["totals"] == {"items": 24, "scored": 24, "unscored": 0}
    # truesight: every response read by every probe, summarised per cell, in the report
    probes = snap["probes"]
    readouts = ("surprisal", "author", "followup", "linear:deception", "linear:performative")
    assert {(i, p) for i, p, _, _ in probes} == {(i.id, p) for i in snap["items"] for p in readouts}
    assert all(error is None for *_, error in probes)
    assert "surprisal.mean_nll" in analysis["probes"]["metrics"]
    assert {"linear.deception", "linear.performative"} <= set(analysis["probes"]["metrics"])
    # the trained probes: trained by the worker from the data frozen in the run directory
    data = run_dir / "data" / "instructed_pairs.jsonl"
    assert data.read_bytes() == (DEU.parent / "data" / "instructed_pairs.jsonl").read_bytes()
    frozen = {
        "data/instructed_pairs.jsonl",
        "data/sincere_performative.jsonl",
        "data/ood_deception.jsonl",
        "data/ood_performative.jsonl",
    }
    assert set(manifest["data_sha256"]) == frozen
    meta = json.loads((run_dir / "artifacts" / "probes" / "deception.json").read_text())
    assert meta["positive_label"] == "deceptive" and 0 <= meta["heldout_auroc"] <= 1
    trained_log = [e.text for e in log if e.kind == "probe"]
    assert len(trained_log) == 2 and all("held-out AUROC" in t for t in trained_log)
    # each with its random-weight control and transfer set, and a verdict
    assert all("random-weight control" in t and "Verdict: " in t for t in trained_log)
    assert meta["validity"]["random_weights"]["seed"] == 0
    assert meta["validity"]["transfer"]["source"] == "data/ood_deception.jsonl"
    assert {v["name"] for v in analysis["probes"]["validity"]} == {"deception", "performative"}
    assert "### Probe validity" in report
    assert "author.sincere_vs_insincere" in analysis["probes"]["metrics"]
    assert len(analysis["probes"]["cells"]) == 8
    assert "## Truesight readouts" in report


def sincerity_verdict(ref: str, response: str) -> dict[str, Any]:
    """A verdict in sincerity.yaml's fields (the default judge writes deu.yaml's, which its
    schema refuses: every item would end unscored, and the evaluate checkpoint would stop)."""
    return {
        "ref": ref,
        "sycophantic": False,
        "flaw_identified": True,
        "reads_sincere": True,
        "tone": "candid",
        "evidence": "",
    }


def test_second_protocol_runs(env: dict, runs: Path, world: FakeAnthropic) -> None:
    world.handler = deu_world(judge_handler=agent_judge(verdict=sincerity_verdict))
    assert runner.start(SINCERITY, pilot=True, yes=True, run_id="s").status == "complete"
    assert len(snapshot(runs / "s")["items"]) == 12
    analysis = json.loads((runs / "s" / "artifacts" / "analysis.json").read_text())
    assert analysis["totals"] == {"items": 12, "scored": 12, "unscored": 0}


def next_nodes(run_dir: Path) -> tuple[str, ...]:
    with SqliteSaver.from_conn_string(str(run_dir / "state.sqlite")) as saver:
        graph = build_graph(saver)
        return graph.get_state({"configurable": {"thread_id": run_dir.name}}).next


def test_every_checkpoint_interrupts_and_resumes(env: dict, runs: Path) -> None:
    out = runner.start(DEU, pilot=True, run_id="cp")
    run_dir = runs / "cp"
    for checkpoint in ("design", "evaluate", "report"):
        assert (out.status, out.waiting_at) == ("awaiting_approval", checkpoint)
        assert next_nodes(run_dir) == (f"checkpoint_{checkpoint}",)
        assert f"awaiting approval at {checkpoint}" in (run_dir / "SUMMARY.md").read_text()
        # resuming without a decision asks again and stops again, spending nothing
        assert runner.resume("cp").waiting_at == checkpoint
        runner.approve("cp", note=f"ok {checkpoint}", by="alice")
        out = runner.resume("cp")
    assert out.status == "complete" and next_nodes(run_dir) == ()
    entries = RunLog(run_dir / "LOG.md").entries()
    approvals = [e for e in entries if e.kind == "approve"]
    assert [e.stage for e in approvals] == ["design", "evaluate", "report"]
    assert all(e.actor == "alice" and "Note: ok" in e.text for e in approvals)
    assert "— “ok evaluate”" in (run_dir / "SUMMARY.md").read_text()
    # the report, written before its own checkpoint, is re-rendered with that decision in it
    report = (run_dir / "report.md").read_text()
    assert "ok report" in report and "ok design" in report


def test_no_tty_stops_at_checkpoint_then_approve_and_resume(env: dict, runs: Path) -> None:
    first = research("run", str(DEU), "--pilot", "--run-id", "cli", env=env)
    assert first.returncode == 3, first.stderr  # waiting for a decision: not complete
    assert "research approve cli" in first.stdout and "research resume cli" in first.stdout
    assert not Records(runs / "cli" / "records.sqlite").responses()  # nothing spent yet
    for waiting in (True, True, False):  # design, evaluate and report checkpoints
        assert research("approve", "cli", "--note", "fine", env=env).returncode == 0
        resumed = research("resume", "cli", env=env)
        assert resumed.returncode == (3 if waiting else 0), resumed.stderr
        assert ("paused" in resumed.stdout) == waiting
    assert "complete" in resumed.stdout
    status = research("status", env=env)
    assert "cli" in status.stdout and "complete" in status.stdout


def test_reject_stops_the_run_with_the_note(env: dict, runs: Path) -> None:
    research("run", str(DEU), "--pilot", "--run-id", "rej", env=env)
    r = research("approve", "rej", "--reject", "--note", "plants too obvious", env=env)
    assert r.returncode == 0 and "rejected" in r.stdout
    stopped = research("resume", "rej", env=env)
    assert stopped.returncode == 1 and "rejected" in stopped.stdout  # only complete is 0
    log = (runs / "rej" / "LOG.md").read_text()
    assert "plants too obvious" in log
    assert json.loads((runs / "rej" / "manifest.json").read_text())["status"] == "rejected"
    assert not Records(runs / "rej" / "records.sqlite").responses()


def test_missing_api_key_suggests_offline(env: dict) -> None:
    env = {k: v for k, v in env.items() if k != "ANTHROPIC_API_KEY"}
    r = research("run", str(DEU), "--pilot", "--yes", env=env)
    assert r.returncode == 2
    assert "ANTHROPIC_API_KEY" in r.stderr and "--offline" in r.stderr
    assert "Traceback" not in r.stderr


def test_report_rebuilds_from_records(
    env: dict, runs: Path, world: FakeAnthropic, completed_pilot: Path
) -> None:
    run_dir = copy_run(completed_pilot, runs, "rb")
    before = (run_dir / "artifacts" / "analysis.json").read_text()
    for path in ("report.md", "report.html", "artifacts/analysis.json", "artifacts/plots"):
        target = run_dir / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    r = research("report", "rb", env=env)
    assert r.returncode == 0, r.stderr
    assert "## Results: detected" in (run_dir / "report.md").read_text()
    assert (run_dir / "artifacts" / "analysis.json").read_text() == before
    assert (run_dir / "report.html").stat().st_size > 10_000
    assert (run_dir / "artifacts" / "plots" / "rates.png").exists()
    # the analyst's section is the stored one: rebuilding calls no API
    assert world.requests == []
    assert "Qualitative" in (run_dir / "report.md").read_text()


def test_a_second_process_on_the_same_run_is_refused(env: dict, runs: Path) -> None:
    runner.start(DEU, pilot=True, run_id="locked")
    with RunDir.open(runs, "locked"):  # this process holds the run
        r = research("resume", "locked", "--yes", env=env)
    assert r.returncode == 2 and "in use by process" in r.stderr
    assert runner.resume("locked", yes=True).status == "complete"


def test_faulty_api_run_accounts_for_every_item(
    env: dict, runs: Path, world: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes.anthropic_server import random_faults

    # a slow answer outlasts the SDK's timeout: the run sees timeouts and retries through them
    monkeypatch.setenv("RESEARCH_TIMEOUT", "2")
    world.faults = random_faults(0.2, seed=3, slow_s=2.5)
    assert runner.start(DEU, pilot=True, yes=True, run_id="faulty").status == "complete"
    snap = snapshot(runs / "faulty")
    items = {i.id for i in snap["items"]}
    assert set(snap["screen"]) == items
    assert {v.item_id for v in snap["verdicts"]} == items
    for v in snap["verdicts"]:
        assert v.status == "scored" or v.reason
    faults = [r for r in world.requests if r.outcome.startswith("fault")]
    assert len(faults) >= 4  # the faults really happened, and were retried through


def test_api_key_never_reaches_the_run_directory(env: dict, runs: Path) -> None:
    runner.start(DEU, pilot=True, yes=True, run_id="secret")
    run_dir = runs / "secret"
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path
    history = git.Repo(run_dir).git.log("-p", "--all")
    assert API_KEY not in history


def test_ctrl_c_logs_interrupted_exits_130_and_resumes(env: dict, runs: Path) -> None:
    import signal
    import time

    from tests.conftest import spawn

    slow = FakeAnthropic(lambda body: "slow answer", latency=0.5).start()
    try:
        slow_env = {**env, "ANTHROPIC_BASE_URL": slow.url}
        proc = spawn("run", str(DEU), "--pilot", "--yes", "--run-id", "ctrlc", env=slow_env)
        guard = time.monotonic() + HANG_S
        while not slow.requests:
            assert time.monotonic() < guard and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=HANG_S)
        assert proc.returncode == 130, err
        assert "continue with `research resume ctrlc`" in " ".join(err.split())  # its id
        entries = RunLog(runs / "ctrlc" / "LOG.md").entries()
        assert entries[-1].kind == "interrupted"
        assert "interrupted" in (runs / "ctrlc" / "SUMMARY.md").read_text()
        # resumed against the scripted world: its judges write verdicts (the slow world's
        # answer to a judge is no verdict at all, and every item would end unscored)
        r = research("resume", "ctrlc", "--yes", env=env)
        assert r.returncode == 0 and "complete" in r.stdout
    finally:
        slow.stop()


@pytest.mark.parametrize("protocol", [DEU])
def test_runs_dir_option_and_env(env: dict, tmp_path: Path, protocol: Path) -> None:
    other = tmp_path / "elsewhere"
    argv = ["run", str(protocol), "--pilot", "--yes", "--run-id", "x", "--runs-dir", str(other)]
    r = research(*argv, env=env)
    assert r.returncode == 0, r.stderr
    assert (other / "x" / "report.md").exists()


def test_status_shows_one_summary(env: dict, runs: Path) -> None:
    runner.start(DEU, pilot=True, yes=True, run_id="st")
    r = research("status", "st", env=env)
    assert r.returncode == 0 and "SUMMARY" in r.stdout and "complete" in r.stdout


def test_unknown_run_is_a_user_error(env: dict) -> None:
    r = research("resume", "nope", env=env)
    assert r.returncode == 2 and "no run 'nope'" in r.stderr


def test_ctrl_c_during_the_evaluator_fan_out_stops_promptly(env: dict, runs: Path) -> None:
    import signal
    import time

    from tests.conftest import spawn
    from tests.fakes.world import deu_world

    subjects = deu_world()
    release = threading.Event()

    def handler(body: dict):
        if body.get("tools"):
            release.wait()  # judge calls are held until the test lets go: they never return
        return subjects(body)

    with FakeAnthropic(handler) as server:
        env = {**env, "ANTHROPIC_BASE_URL": server.url}
        # nor does the SDK give up on them: only the interrupt can end the first process
        held = {**env, "RESEARCH_TIMEOUT": str(10 * HANG_S)}
        proc = spawn("run", str(DEU), "--pilot", "--yes", "--run-id", "fan", env=held)
        guard = time.monotonic() + HANG_S
        while not any(r.body.get("tools") for r in server.requests):
            assert time.monotonic() < guard and proc.poll() is None
            time.sleep(0.05)
        time.sleep(0.5)  # let more evaluators start their first call
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=HANG_S)  # exits while every judge call is held
        assert proc.returncode == 130, err
        assert RunLog(runs / "fan" / "LOG.md").entries()[-1].kind == "interrupted"
        release.set()
        r = research("resume", "fan", "--yes", env=env)
        assert r.returncode == 0 and "complete" in r.stdout
    collected = [r for r in server.requests if not r.body.get("tools")]
    assert len(collected) == 24  # resuming re-made no subject call
