"""The qualitative section on a real pilot run: the analyst's fabricated quote is caught, removed
and logged; a real one is kept; asking again costs nothing; a failing analyst does not fail the
run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.client import Unavailable
from memory import RunLog
from orchestrator import runner
from orchestrator.analysis import analyze_records, load_analysis
from orchestrator.analysis.result import Coefficient, ModelFit
from orchestrator.context import RunContext, as_run
from orchestrator.nodes.qualitative import render_statistics, sample, write_qualitative
from orchestrator.panel import CheckpointDecision
from orchestrator.records import Item, Response, Verdict
from orchestrator.report import write_report
from orchestrator.rundir import RunDir
from tests.conftest import DEU
from tests.fakes.anthropic_server import FakeAnthropic, Fault
from tests.fakes.world import analyst, deu_world, is_analyst

FABRICATED = "I refuse to follow hidden instructions, as my principles demand."
SHAPE = {
    "model",
    "focus",
    "overview",
    "sections",
    "limitations",
    "removed",
    "withheld",
    "sampled",
    "error",
}


@pytest.fixture
def evaluated(env: dict, runs: Path) -> Iterator[RunContext]:
    """A pilot run of deu.yaml, stopped at the evaluate checkpoint (before analyze), opened as
    the analyze node would see it."""

    def approver(panel: Any) -> CheckpointDecision | None:
        return CheckpointDecision("approve") if panel.checkpoint == "design" else None

    out = runner.start(DEU, pilot=True, run_id="qual", approver=approver)
    assert out.status == "awaiting_approval" and out.waiting_at == "evaluate"
    with RunDir.open(runs, "qual") as run:
        m = run.manifest
        protocol = as_run(run.loaded.protocol, offline=m.offline, local_model=m.local_model)
        yield RunContext(run, protocol)


def analyst_calls(world: FakeAnthropic) -> list[dict[str, Any]]:
    return [r.body for r in world.requests if is_analyst(r.body)]


def fabricating(shown: dict[str, str]) -> dict[str, Any]:
    (real_id, real), (other_id, _) = list(shown.items())[:2]
    quotes = [
        {"item_id": real_id, "quote": " ".join(real.split()[:5])},
        {"item_id": other_id, "quote": FABRICATED},
    ]
    theme = {"title": "Reports", "text": "Some responses report the instruction.", "quotes": quotes}
    return {
        "overview": "Under the DEU framing responses named the planted instruction.",
        "themes": [theme],
        "limitations": "Three responses per cell.",
    }


def test_a_fabricated_quote_is_removed_and_logged_and_a_real_one_kept(
    evaluated: RunContext, world: FakeAnthropic
) -> None:
    ctx = evaluated
    world.handler = deu_world(analyst_handler=analyst(fabricating))
    analysis = analyze_records(ctx.protocol, ctx.run.records)
    out = write_qualitative(ctx, analysis)
    saved = json.loads(ctx.run.path("artifacts", "qualitative.json").read_text())
    assert saved == out and set(out) == SHAPE and out["error"] is None
    assert out["model"] == ctx.protocol.evaluation.judge.model
    assert out["focus"] == ctx.protocol.analysis.qualitative.focus
    # every cell sampled (3 items per cell at pilot size, fewer than sample_per_cell=4)
    items = {i.id: i for i in ctx.run.records.items()}
    assert out["sampled"] == {
        cell: sorted(i for i in items if items[i].cell == cell)
        for cell in {i.cell for i in items.values()}
    }
    (section,) = out["sections"]
    (kept,) = section["quotes"]
    responses = ctx.run.records.responses()
    assert kept["quote"] in responses[kept["item_id"]].text
    assert kept["cell"] == items[kept["item_id"]].cell
    assert FABRICATED not in json.dumps(out["sections"])
    (removed,) = out["removed"]
    assert removed["quote"] == FABRICATED
    assert removed["reason"] == "not found verbatim in the item's response"
    log = RunLog(ctx.run.path("LOG.md")).entries()
    (entry,) = [e for e in log if e.kind == "quote_removed"]
    assert entry.stage == "analyze" and removed["item_id"] in entry.text
    assert FABRICATED in entry.text
    assert any(e.kind == "qualitative" and "1 quotes verified, 1 removed" in e.text for e in log)
    # the analyst saw conditions, the statistics and SUMMARY.md
    (body,) = analyst_calls(world)
    user = body["messages"][0]["content"]
    assert 'framing="deu"' in user and "Contrasts" in user and "Fisher p" in user
    assert "<summary>" in user and "evaluate" in user
    assert ctx.run.records.usage()["analyze"]["calls"] == 1

    # a re-run (resume, or the analyze node again) pays nothing and logs nothing new
    out2 = write_qualitative(ctx, analysis)
    assert out2 == out and len(analyst_calls(world)) == 1
    assert len(RunLog(ctx.run.path("LOG.md")).entries()) == len(log)
    assert ctx.run.records.usage()["analyze"]["calls"] == 1


def small_model(shown: dict[str, str]) -> dict[str, Any]:
    """A draft as the offline 135M analyst writes one: the same made-up line under both themes,
    and its limitations filled to their maxLength with that line, cut off."""
    first = next(iter(shown))
    quote = {"item_id": first, "quote": FABRICATED}
    themes = [
        {"title": "Refusals", "text": "Responses refuse.", "quotes": [quote]},
        {"title": "Principles", "text": "Principles are cited.", "quotes": [quote]},
    ]
    return {
        "overview": "Responses vary.",
        "themes": themes,
        "limitations": "Small sample. " + FABRICATED[:30],
    }


def test_a_removed_quote_is_listed_once_and_nowhere_else(
    evaluated: RunContext, world: FakeAnthropic
) -> None:
    ctx = evaluated
    world.handler = deu_world(analyst_handler=analyst(small_model))
    analysis = analyze_records(ctx.protocol, ctx.run.records)
    out = write_qualitative(ctx, analysis)
    assert [r["quote"] for r in out["removed"]] == [FABRICATED]
    assert out["limitations"] == "" and out["withheld"] == ["limitations"]
    log = RunLog(ctx.run.path("LOG.md")).entries()
    removed = [e for e in log if e.kind == "quote_removed"]
    assert len(removed) == 2 and "Withheld the analyst's limitations" in removed[1].text
    md = write_report(ctx.run, ctx.protocol, analysis).read_text()
    html = ctx.run.path("report.html").read_text()
    for text in (md, html):
        # listed once, under the removed quotes; no part of it anywhere else in the report
        assert text.count(FABRICATED) == 1
        assert text.count(FABRICATED[:30]) == 1
    assert "Withheld from the analyst's draft because they repeat a removed quote" in md
    limitations = md.split("## Limitations\n", 1)[1].split("\n## ", 1)[0]
    assert "Qualitative analysis:" not in limitations


def test_a_refused_analyst_call_leaves_an_error_an_outage_stops_the_stage(
    evaluated: RunContext, world: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = evaluated
    monkeypatch.setenv("RESEARCH_MAX_RETRIES", "0")
    # an API that keeps failing: no section is written from it, the stage stops to be resumed
    world.handler = deu_world(analyst_handler=lambda body: Fault.server_error())
    with pytest.raises(Unavailable, match="HTTP 500"):
        write_qualitative(ctx, analyze_records(ctx.protocol, ctx.run.records))
    assert not ctx.run.path("artifacts", "qualitative.json").exists()
    tries = 1 + ctx.retry.tries
    assert (
        len(analyst_calls(world)) == tries and ctx.run.records.usage()["analyze"]["calls"] == tries
    )
    retries = [e for e in RunLog(ctx.run.path("LOG.md")).entries() if e.kind == "retry"]
    assert len(retries) == ctx.retry.tries and all("HTTP 500" in e.text for e in retries)

    # a request the API refuses fails the same way every time: the error is the section's
    world.handler = deu_world(analyst_handler=lambda body: Fault.invalid_request())
    out = write_qualitative(ctx, analyze_records(ctx.protocol, ctx.run.records))
    assert set(out) == SHAPE and out["sections"] == [] and "HTTP 400" in out["error"]
    saved = json.loads(ctx.run.path("artifacts", "qualitative.json").read_text())
    assert saved == out
    log = RunLog(ctx.run.path("LOG.md")).entries()
    assert any(e.kind == "error" and e.stage == "analyze" and "HTTP 400" in e.text for e in log)
    # a protocol without a qualitative section skips it without a call
    bare = ctx.protocol.model_copy(
        update={"analysis": ctx.protocol.analysis.model_copy(update={"qualitative": None})}
    )
    calls = len(analyst_calls(world))
    out = write_qualitative(RunContext(ctx.run, bare), analyze_records(bare, ctx.run.records))
    assert "skipped" in out and len(analyst_calls(world)) == calls


def test_sampling_prefers_scored_non_empty_responses_of_both_outcomes() -> None:
    def item(k: int) -> Item:
        return Item(f"c.{k:03d}", "c", "s", {}, k, "t", None, "", "", "")

    items = [item(k) for k in range(8)]
    texts = {0: "", 1: "a", 2: "b", 3: "c", 4: "d", 5: "e", 6: "f", 7: "g"}
    responses = {
        f"c.{k:03d}": Response(f"c.{k:03d}", t, "end_turn", None, 1) for k, t in texts.items()
    }

    def verdict(k: int, detected: bool | None) -> Verdict:
        fields = None if detected is None else {"detected": detected}
        status = "unscored" if fields is None else "scored"
        return Verdict(f"c.{k:03d}", "e", "b", status, fields, None)

    detected = [True, True, True, True, False, None, None, None]
    verdicts = {v.item_id: v for v in (verdict(k, d) for k, d in enumerate(detected))}
    chosen = sample(items, responses, verdicts, 3, 7, "detected")["c"]
    assert len(chosen) == 3 and "c.000" not in chosen  # the empty response is never shown
    assert "c.004" in chosen  # the one negative is taken alongside the positives
    assert not {"c.005", "c.006", "c.007"} & set(chosen)  # scored ones first
    assert sample(items, responses, verdicts, 3, 7, "detected")["c"] == chosen
    assert len(sample(items, responses, verdicts, 7, 7, "detected")["c"]) == 7


def test_the_analyst_reads_every_cell_contrast_and_interaction(completed_pilot: Path) -> None:
    analysis = load_analysis(completed_pilot / "artifacts" / "analysis.json")

    def coef(term: str, value: float) -> Coefficient:
        lo, hi = value - 1, value + 1
        return Coefficient(
            term=term, coef=value, se=0.5, z=2.0, p=0.0432, lo=lo, hi=hi, odds_ratio=1
        )

    fitted = ModelFit(
        name="framing_by_subject",
        outcome="detected",
        formula="detected ~ framing * subject",
        terms=["framing", "subject"],
        within={},
        n=12,
        clusters=6,
        cluster="task",
        coefficients=[coef("Intercept", -1.0), coef("framing[deu]:subject[b]", 1.234)],
        interaction="framing[deu]:subject[b]",
        reference={},
        error=None,
    )
    analysis.models = [fitted]
    lines = render_statistics(analysis).splitlines()
    assert lines[:3] == [
        "Primary outcome: detected. Rates are k/n of scored items with 95% Wilson intervals; "
        "unscored items are left out of n.",
        "",
        "Cells:",
    ]
    cells = [line for line in lines if line.startswith("- claude-")]
    assert len(cells) == len(analysis.cells) == 8
    for cell, line in zip(analysis.cells, cells, strict=True):
        o = cell.outcomes["detected"]
        assert line.startswith(f"- {cell.cell}: detected {o.k}/{o.n} = {o.rate:.2f} ")
        assert line.endswith(f" (unscored {o.unscored})")
    assert "Contrasts (treatment minus control):" in lines
    contrasts = [line for line in lines if line.startswith("- deu_effect")]
    pooled = [line for line in contrasts if ": all subjects' deu " in line]
    assert len(contrasts) - len(pooled) == len(analysis.contrasts)
    # two subjects: each contrast on each outcome pooled over both, after the per-subject ones
    assert len(pooled) == len(analysis.pooled or []) == len(analysis.contrasts) // 2
    assert lines.index(pooled[0]) > lines.index(
        "Contrasts pooled across subjects (treatment "
        "minus control: the arm coefficient of OLS y ~ arm + C(subject), a within-subject "
        "difference; SE clustered by task, t interval):"
    )
    assert lines[-1] == (
        "- model framing_by_subject (logistic): framing[deu]:subject[b] +1.23 log-odds "
        "[+0.23, +2.23], p = 0.0432"
    )
