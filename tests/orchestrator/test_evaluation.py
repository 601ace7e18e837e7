"""Evaluation in whole runs: blinding, flags that reach the human, agreement figures."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from memory import RunLog
from orchestrator import runner
from orchestrator.analysis import compute_agreement, load_analysis
from orchestrator.analysis.agreement import _alpha
from orchestrator.protocol import load_protocol
from orchestrator.protocol.schema import VerdictField
from orchestrator.records import Records, Verdict
from tests.conftest import DEU, research, spawn, without_probes
from tests.fakes.anthropic_server import FakeAnthropic, tool_use
from tests.fakes.world import (
    _last_tool,
    _verdict,
    agent_judge,
    deu_world,
    evaluator_of,
    is_analyst,
)


def test_evaluators_never_see_a_condition(env: dict, runs: Path, world: FakeAnthropic) -> None:
    assert runner.start(DEU, pilot=True, yes=True, run_id="blind").status == "complete"
    rec = Records(runs / "blind" / "records.sqlite")
    items = rec.items()
    protocol = load_protocol(DEU).protocol
    secrets = {
        t.strip()
        for levels in protocol.materials.level_text.values()
        for t in levels.values()
        if t.strip()
    }
    secrets |= {i.id for i in items} | {i.cell for i in items}
    secrets |= {p.id for p in protocol.materials.plants}
    # hypothesis-blind: no title, question or hypothesis (judges get the rubric and fields) ...
    secrets |= {protocol.title, protocol.question.strip()} | {
        h.text.strip() for h in protocol.hypotheses
    }
    # ... and no level named as a condition, however it might be written
    for factor, f in protocol.design.factors.items():
        for level in f.levels:
            secrets |= {f"{factor}: {level}", f"{factor}={level}", f'"{factor}": "{level}"'}
    judged = [r for r in world.requests if r.body.get("tools") and not is_analyst(r.body)]
    assert len(judged) >= 8
    for r in judged:
        wire = json.dumps(r.body)
        leaked = [s for s in secrets if s in wire or json.dumps(s)[1:-1] in wire]
        assert not leaked, f"an evaluator request carries {leaked[:3]}"
    # ... while the subjects did see the framing: the scan would have found it
    notice = protocol.materials.level_text["framing"]["deu"].strip()
    assert any(notice in json.dumps(r.body) for r in world.requests if not r.body.get("tools"))


def flagging_judge(who: str) -> Any:
    def flag(result: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": "data_quality",
            "refs": [result["items"][0]["ref"]],
            "text": "Several responses end mid-sentence: truncated?",
        }

    plain, flags = agent_judge(), agent_judge(flag=flag)

    def handler(body: dict[str, Any]):
        return flags(body) if evaluator_of(body) == who else plain(body)

    return handler


def test_one_evaluators_data_flag_reaches_the_human_and_blocks_yes(
    env: dict, runs: Path, world: FakeAnthropic
) -> None:
    world.handler = deu_world(judge_handler=flagging_judge("evaluator-3"))
    seen = []

    def approver(panel):  # a person at the terminal who looks, then decides later
        seen.append(panel)
        return None

    out = runner.start(DEU, pilot=True, yes=True, run_id="flagged", approver=approver)
    assert out.status == "awaiting_approval" and out.waiting_at == "evaluate"
    assert len(out.blocked_by) == 1 and "truncated?" in out.blocked_by[0]
    (panel,) = seen
    (group,) = [g for g in panel.flags if g.kind == "data_quality" and g.stage == "evaluate"]
    assert group.raised_by == ["evaluator-3"] and group.blocking
    assert group.examples and group.examples[0][0].count(".") == 3  # an item id, with its text
    assert "truncated?" in group.texts[0]
    summary = (runs / "flagged" / "SUMMARY.md").read_text()
    assert "data_quality" in summary and "raised by evaluator-3" in summary
    # --yes alone still stops; --accept-flags approves, and the flag's resolution is logged
    assert runner.resume("flagged", yes=True).status == "awaiting_approval"
    assert runner.resume("flagged", yes=True, accept_flags=True).status == "complete"
    log = RunLog(runs / "flagged" / "LOG.md").entries()
    resolved = [e for e in log if e.kind == "flag_resolved"]
    assert resolved and "accepted at the evaluate checkpoint" in resolved[0].text
    assert any(e.kind == "flag" and "evaluator-3" in e.text for e in log)
    assert not [f for f in Records(runs / "flagged" / "records.sqlite").flags() if not f.resolution]


def test_agreement_figures_of_a_run(env: dict, runs: Path, world: FakeAnthropic) -> None:
    assert runner.start(DEU, pilot=True, yes=True, run_id="agree").status == "complete"
    data = json.loads((runs / "agree" / "artifacts" / "agreement.json").read_text())
    detected = data["fields"]["detected"]
    assert data["overlap_items"] == 2 and data["duplicates"] == 8
    # the scripted judge is deterministic: it agrees with itself and with the others
    assert detected["agree"] == 1.0 and detected["self_agree"] == 1.0
    assert "agreement on detected" in (runs / "agree" / "SUMMARY.md").read_text()


# --- agreement statistics on fixed data ----------------------------------------------------


def fixed_records(tmp_path: Path, pattern: list[tuple[bool, bool]], dup: list[tuple[bool, bool]]):
    rec = Records(tmp_path / "records.sqlite")

    def fields(detected: bool) -> dict[str, Any]:
        return {
            "detected": detected,
            "complied": False,
            "questioned_legitimacy": detected,
            "reasoning_style": "none",
            "evidence": "",
        }

    rows = []
    for k, (a, b) in enumerate(pattern):
        item = f"c.x.y.{k:03d}"
        rows.append(Verdict(item, "evaluator-1", "batch-01", "scored", fields(a), None))
        other = {**fields(a), "detected": b}  # only `detected` differs between the two
        rows.append(Verdict(item, "evaluator-2", "batch-02", "scored", other, None, 0, "overlap"))
    for k, (a, b) in enumerate(dup):
        item = f"c.x.z.{k:03d}"
        rows.append(Verdict(item, "evaluator-3", "batch-03", "scored", fields(a), None))
        again = {**fields(a), "detected": b}
        rows.append(Verdict(item, "evaluator-3", "batch-03", "scored", again, None, 1, "duplicate"))
    rec.add_verdicts(rows)
    return rec


def test_kappa_alpha_and_self_consistency_match_hand_computation(tmp_path: Path) -> None:
    # 10 overlap pairs: 4 both yes, 3 both no, 2 yes/no, 1 no/yes -> p_o = 0.7
    pattern = [(True, True)] * 4 + [(False, False)] * 3 + [(True, False)] * 2 + [(False, True)]
    dup = [(True, True)] * 3 + [(True, False)]
    rec = fixed_records(tmp_path, pattern, dup)
    data = compute_agreement(load_protocol(DEU).protocol, rec).model_dump(mode="json")
    d = data["fields"]["detected"]
    p_o = 0.7
    p_e = (6 / 10) * (5 / 10) + (4 / 10) * (5 / 10)  # rater A yes 6/10, rater B yes 5/10
    assert d["agree"] == pytest.approx(p_o)
    assert d["kappa"] == pytest.approx((p_o - p_e) / (1 - p_e))
    # Krippendorff's alpha (nominal, 2 coders, no missing): 1 - D_o / D_e over pooled values
    n = 20
    yes = 6 + 5
    d_o = 3 / 10  # disagreeing units / units
    d_e = 2 * yes * (n - yes) / (n * (n - 1))
    assert d["alpha"] == pytest.approx(1 - d_o / d_e)
    assert d["self_n"] == 4 and d["self_agree"] == pytest.approx(0.75)
    assert data["pairs"] == [
        {
            "a": "evaluator-1",
            "b": "evaluator-2",
            "n": 10,
            "agree": 0.7,
            "kappa": pytest.approx(d["kappa"]),
        }
    ]
    # a field on which everyone always agrees on one value: kappa is undefined, not 1 or 0
    assert data["fields"]["reasoning_style"]["kappa"] is None


def citing_judge() -> Any:
    """Reads the first item of each batch with truesight, then cites the readout in its verdict."""
    plain = agent_judge()

    def handler(body: dict[str, Any]):
        name, result, is_error = _last_tool(body)
        if name == "get_batch" and "items" in result:
            ref = result["items"][0]["ref"]
            return tool_use("truesight", {"response_id": ref, "probes": ["surprisal"]})
        if name == "truesight":
            assert not is_error, result
            pid = result["surprisal"]["probe_result_id"]
            batch = next(
                json.loads(b["content"])
                for m in reversed(body["messages"])
                if m["role"] == "user" and isinstance(m["content"], list)
                for b in m["content"]
                if b.get("type") == "tool_result" and b.get("content", "").startswith('{"items"')
            )
            verdicts = [
                {**_verdict(i["ref"], i["response"]), "truesight_ids": [pid]}
                for i in batch["items"]
            ]
            return tool_use("submit_verdicts", {"verdicts": verdicts})
        return plain(body)

    return handler


def test_verdicts_cite_the_readouts_they_relied_on(
    env: dict, runs: Path, world: FakeAnthropic
) -> None:
    world.handler = deu_world(judge_handler=citing_judge())
    assert runner.start(DEU, pilot=True, yes=True, run_id="cite").status == "complete"
    rec = Records(runs / "cite" / "records.sqlite")
    readouts = {r.id: r for r in rec.probe_results()}
    verdicts = rec.verdicts(None)
    assert verdicts and all(len(v.cites) == 1 for v in verdicts)
    for v in verdicts:
        cited = readouts[v.cites[0]]
        assert cited.probe == "surprisal" and cited.result is not None
        # the cited readout is of a response in the same evaluator's batch
        assert cited.item_id in {w.item_id for w in verdicts if w.batch_id == v.batch_id}


def test_a_small_context_budget_compacts_into_notes(
    env: dict, runs: Path, world: FakeAnthropic, tmp_path: Path
) -> None:
    text = DEU.read_text().replace(
        "  max_attempts: 3\n", "  max_attempts: 3\n  context_budget: 300\n  chunk_size: 2\n", 1
    )
    path = tmp_path / "deu.yaml"
    path.write_text(text)
    shutil.copytree(DEU.parent / "data", tmp_path / "data")
    assert runner.start(path, pilot=True, yes=True, run_id="compact").status == "complete"
    run_dir = runs / "compact"
    notes = sorted((run_dir / "memory").glob("evaluator-*.md"))
    assert notes, "no evaluator wrote notes"
    assert "**done**" in notes[0].read_text()
    log = RunLog(run_dir / "LOG.md").entries()
    assert any(e.kind == "compaction" for e in log)
    rec = Records(run_dir / "records.sqlite")
    assert {v.status for v in rec.verdicts()} == {"scored"} and len(rec.verdicts()) == 24


def opening(body: dict[str, Any]) -> str:
    """The first message of an evaluator's conversation: how it was told to begin."""
    first = body["messages"][0]["content"]
    return first if isinstance(first, str) else first[0]["text"]


def test_more_batches_than_evaluators_a_next_batch_is_fresh_a_cut_one_continues(
    env: dict, runs: Path, tmp_path: Path
) -> None:
    # 24 pilot items in batches of 5 for 2 evaluators: evaluator-1 judges batches 1, 3 and 5,
    # evaluator-2 batches 2 and 4; chunks of 2, so a cut batch still has items left. No probes:
    # they are not what is tested here, and the slowest stage.
    text = without_probes(DEU.read_text())
    text = text.replace("  evaluators: 8\n  batch_size: 50\n", "  evaluators: 2\n  batch_size: 5\n")
    text = text.replace("  max_attempts: 3\n", "  max_attempts: 3\n  chunk_size: 2\n", 1)
    path = tmp_path / "deu.yaml"
    path.write_text(text)
    shutil.copytree(DEU.parent / "data", tmp_path / "data")
    judge = agent_judge()
    release = threading.Event()

    def handler(body: dict[str, Any]) -> Any:
        name, _, is_error = _last_tool(body)
        if evaluator_of(body) == "evaluator-2" and name == "submit_verdicts" and not is_error:
            release.wait(120)  # evaluator-2 is cut off mid-batch, after its first verdicts
        return judge(body)

    def evaluator_1_done() -> bool:
        """Whether evaluator-1 has finished all three of its batches (read as the run goes)."""
        db = runs / "many" / "records.sqlite"
        if not db.exists():
            return False
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            sql = "SELECT COUNT(*) FROM batches WHERE evaluator='evaluator-1' AND status='done'"
            return con.execute(sql).fetchone()[0] == 3

    world = deu_world(judge_handler=handler)
    with FakeAnthropic(world) as server:
        run_env = {**env, "ANTHROPIC_BASE_URL": server.url, "RESEARCH_TIMEOUT": "120"}
        proc = spawn("run", str(path), "--pilot", "--yes", "--run-id", "many", env=run_env)
        deadline = time.monotonic() + 300
        while not evaluator_1_done():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        release.set()
        assert proc.returncode == 130
        first_run = len(server.requests)
        r = research("resume", "many", "--yes", env=run_env, timeout=300)
        assert r.returncode == 0 and "complete" in r.stdout, r.stderr
        judged = [
            (n, s.body)
            for n, s in enumerate(server.requests)
            if s.body.get("tools") and not is_analyst(s.body)
        ]
    starts = [(n, evaluator_of(b), opening(b)) for n, b in judged if len(b["messages"]) == 1]
    before = [(who, text) for n, who, text in starts if n < first_run]
    after = [(who, text) for n, who, text in starts if n >= first_run]
    # each batch an evaluator takes up for the first time opens fresh, its second and third too
    assert [who for who, _ in before].count("evaluator-1") == 3
    assert not [text for _, text in before if "continuing work" in text]
    # ... while the batches cut off by Ctrl-C continue from where they were, and only they
    assert after and {who for who, _ in after} == {"evaluator-2"}
    assert all("continuing work" in text and "items remain" in text for _, text in after)
    rec = Records(runs / "many" / "records.sqlite")
    assert len(rec.batches()) == 5
    assert {s.reason for s in rec.sessions("evaluator-1")} == {"start"}
    assert "restart" in {s.reason for s in rec.sessions("evaluator-2")}
    report = (runs / "many" / "report.md").read_text()
    (line,) = [x for x in report.splitlines() if "continued in a fresh conversation" in x]
    assert "evaluator-2" in line and "evaluator-1" not in line


def test_int_and_ordinal_verdict_fields_run_through_a_pilot(
    env: dict, runs: Path, world: FakeAnthropic, tmp_path: Path
) -> None:
    """deu.yaml plus an int with a range and an ordinal: the pilot completes, the values are
    stored and exported as given, and agreement on the ordinal is at the ordinal level."""
    extra = (
        "    turns:\n      type: int\n      min: 0\n      max: 3\n"
        "      description: Sentences before the response mentions the plant.\n"
        "    confidence:\n      type: ordinal\n      levels: [none, low, medium, high]\n"
        "      description: How sure the response is that something was planted.\n"
    )
    text = DEU.read_text()
    assert text.count("    evidence:\n") == 1
    path = tmp_path / "deu.yaml"
    path.write_text(text.replace("    evidence:\n", extra + "    evidence:\n"))
    shutil.copytree(DEU.parent / "data", tmp_path / "data")

    def scored(ref: str, response: str) -> dict[str, Any]:
        hit = _verdict(ref, response)["detected"]
        return {
            **_verdict(ref, response),
            "turns": 1 if hit else 3,
            "confidence": "high" if hit else "none",
        }

    world.handler = deu_world(judge_handler=agent_judge(verdict=scored))
    assert runner.start(path, pilot=True, yes=True, run_id="typed").status == "complete"
    verdicts = [v for v in Records(runs / "typed" / "records.sqlite").verdicts(None) if v.fields]
    assert verdicts
    for v in verdicts:
        assert (v.fields["turns"], v.fields["confidence"]) in ((1, "high"), (3, "none"))
    exported = (runs / "typed" / "artifacts" / "verdicts.jsonl").read_text().splitlines()
    assert any('"turns": 1' in line and '"confidence": "high"' in line for line in exported)
    data = json.loads((runs / "typed" / "artifacts" / "agreement.json").read_text())
    assert data["fields"]["confidence"]["alpha_level"] == "ordinal"
    assert data["fields"]["turns"]["alpha_level"] == "interval"
    assert data["fields"]["confidence"]["agree"] == 1.0
    report = (runs / "typed" / "report.md").read_text()
    assert "| confidence |" in report and "| turns |" in report
    # per cell, the ordinal's levels in their order and the int's mean, as the verdicts give them
    analysis = load_analysis(runs / "typed" / "artifacts" / "analysis.json")
    for cell in analysis.cells:
        o = cell.outcomes["detected"]
        levels = [(x.level, x.count) for x in cell.distributions["confidence"].levels]
        assert levels == [("none", o.n - o.k), ("low", 0), ("medium", 0), ("high", o.k)]
        assert cell.means["turns"].n == o.n > 0
        assert cell.means["turns"].mean == pytest.approx((o.k + 3 * (o.n - o.k)) / o.n)
    assert "#### `confidence` (ordinal: none < low < medium < high)" in report
    assert (runs / "typed" / "artifacts" / "plots" / "levels-confidence.png").exists()


def test_ordinal_alpha_counts_near_misses_as_nearer_than_nominal() -> None:
    levels = ["none", "low", "medium", "high"]
    pairs = [("none", "none"), ("low", "medium"), ("medium", "high"), ("high", "high")] * 3
    units = {f"u{i}": {"a": x, "b": y} for i, (x, y) in enumerate(pairs)}
    ordinal = _alpha(units, ["a", "b"], VerdictField(type="ordinal", levels=levels))
    # the same judgements with the levels' order scrambled: alpha follows the protocol's order
    scrambled = VerdictField(type="ordinal", levels=["medium", "none", "high", "low"])
    nominal = _alpha(units, ["a", "b"], VerdictField(type="enum", values=levels))
    assert ordinal is not None and nominal is not None
    assert ordinal > nominal
    assert _alpha(units, ["a", "b"], scrambled) < ordinal
