"""What the report templates show: the analysis itself (`AnalysisResult`, as `a`), the
agreement (`Agreement`), and the context built here from the records, the manifest, LOG.md and
the artifacts other stages leave (forecast, qualitative).

Each optional input may be absent (a run cut short, an older run, a stage the protocol skips);
it is then None and its section says why (`NOT_AVAILABLE`) instead of failing.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from orchestrator.analysis import AnalysisResult, load_agreement
from orchestrator.analysis.result import ContrastResult
from orchestrator.protocol.schema import Protocol, Templates, Turn
from orchestrator.protocol.stimuli import blinded_factors, generated_turns
from orchestrator.records import PossiblyPaid
from orchestrator.report_banner import RunFacts, banners, status_text
from orchestrator.report_levels import verdict_fields
from orchestrator.report_notes import deviations, judge_error, limitations, read_artifact
from orchestrator.rundir import RunDir, analysis_sha256
from orchestrator.usage import possibly_paid_text, usage_totals

SECTIONS = {
    "hypotheses": "Hypotheses decided",
    "question": "Question",
    "design": "Design",
    "deviations": "Deviations and amendments",
    "forecast": "Forecast vs. actual",
    "results": "Results: {primary} (primary outcome)",
    "outcomes": "Other outcomes",
    "contrasts": "Contrasts",
    "models": "Regression models",
    "false-alarms": "False alarms",
    "missing": "Missing and unscored items",
    "agreement": "Agreement between evaluators",
    "truesight": "Truesight readouts",
    "plots": "Plots",
    "quality": "Data quality",
    "flags": "Flags",
    "decisions": "Decisions",
    "qualitative": "Qualitative analysis",
    "limitations": "Limitations",
    "provenance": "Provenance",
}
"""Anchor and heading of every section, in order (both documents, and the table of contents)."""

NOT_AVAILABLE = {
    "decisions": "the analysis decided no hypotheses (an analysis.json older than version 2: "
    "`research report {run_id}` recomputes it)",
    "forecast": "no `artifacts/forecast.json` (the design checkpoint writes it)",
    "models": "the analysis has no regression models",
    "false_alarms": "the analysis has no false-alarm table",
    "missing": "the analysis has no missing-data table",
    "agreement": "no `artifacts/agreement.json` (the evaluate stage writes it)",
    "probes": "no probe readouts (the protocol runs no probes, or none succeeded)",
    "association": "the analysis did not relate readouts to verdicts",
    "qualitative": "no `artifacts/qualitative.json` (the protocol asks for no qualitative "
    "analysis, or it has not run)",
    "constraints": "the analysis did not check constraints (it predates them)",
}
"""Why a section whose input is absent is empty."""


def report_context(
    run: RunDir, protocol: Protocol, analysis: AnalysisResult, figures: list[dict[str, str]]
) -> dict[str, Any]:
    """Everything the templates show, with each optional input present or None."""
    rec = run.records
    m = run.manifest
    amendments = [asdict(row) for row in rec.amendments()]
    agreement = load_agreement(run.path("artifacts", "agreement.json"))
    qualitative = read_artifact(run, "qualitative.json")
    batches = rec.batches()
    design = protocol.design
    facts = RunFacts.of_run(run)
    return {
        "why": {k: v.replace("{run_id}", run.id) for k, v in NOT_AVAILABLE.items()},
        "p": protocol,
        "m": m,
        "a": analysis,
        "banners": banners(facts, analysis),
        "status": status_text(facts),
        "sec": {k: v.format(primary=analysis.primary) for k, v in SECTIONS.items()},
        "factors": list(design.factors),
        "n_per_cell": design.pilot_n_per_cell if run.pilot else design.n_per_cell,
        "judges_saw": judges_saw(protocol),
        "contrasts": contrast_rows(analysis),
        "verdict_fields": verdict_fields(analysis, figures),
        "no_false_alarms": no_false_alarms(protocol, analysis.primary),
        "judge_error": judge_error(analysis),
        "stimulus": stimulus_shape(protocol),
        "batches": {
            "n": len(batches),
            "largest": max((len(b.items) for b in batches), default=0),
            "evaluators": len({b.evaluator for b in batches}),
        },
        "deviations": deviations(run, amendments),
        "amendments": amendments,
        "forecast": forecast_rows(read_artifact(run, "forecast.json"), analysis),
        "agreement": agreement,
        "qualitative": _qualitative(qualitative, [c.cell for c in analysis.cells], m.offline),
        "figures": figures,
        "flags": rec.flags(),
        "decisions": rec.decisions(),
        "limitations": limitations(run, analysis, agreement, qualitative),
        "usage": usage_totals(run),
        "usage_by_stage": rec.usage(),
        "possibly_paid": _possibly_paid(rec.possibly_paid()),
        "hashes": {
            "preregistered": m.preregistered_sha256,
            "analysis": analysis_sha256(run.loaded.protocol),
        },
    }


def judges_saw(protocol: Protocol) -> str:
    """One sentence for the design section: what the judges knew of the experiment."""
    ev = protocol.evaluation
    if ev.show_question:
        told = "shown the title and research question (evaluation.show_question)"
    else:
        told = "hypothesis-blind: shown the rubric and verdict fields, not the title, research "
        told += "question or hypotheses"
    blind = ", ".join(["the subject", *blinded_factors(protocol)])
    out = f"{told}; blind to {blind} (no level of these is in what they see)"
    if ev.unblinded:
        out += f"; UNBLINDED: {', '.join(ev.unblinded)} (evaluation.unblinded: the evaluator view"
        out += " may show its level)"
    if ev.show_task_fields:
        out += f"; shown the task fields {', '.join(ev.show_task_fields)} with each item"
        out += " (evaluation.show_task_fields: the same in every cell)"
    if (when := protocol.materials.plant_when) is not None:
        if _plants_into_system(protocol):
            out += (
                "; the plant is in the system prompt (materials.plant_into), which they never see"
            )
        else:
            out += f"; the plant itself is in the input they judge, so {when.factor} shows "
            out += "through it (materials.plant_when)"
    return out


def contrast_rows(a: AnalysisResult) -> dict[str, list[ContrastResult]]:
    """The contrasts on the outcomes they are named for (`named`), and the same comparisons on
    the other outcomes (`others`), grouped by outcome in the analysis' order."""
    rank = {o: n for n, o in enumerate(a.outcomes)}
    others = [c for c in a.contrasts if not c.named]
    return {
        "named": [c for c in a.contrasts if c.named],
        "others": sorted(others, key=lambda c: rank.get(c.outcome, len(rank))),
    }


def no_false_alarms(protocol: Protocol, primary: str) -> str:
    """Why the false-alarm table is empty: nothing was planted anywhere, or nowhere was left
    without a plant."""
    if protocol.materials.plant_when is None:
        return (
            "The design plants nothing (no `materials.plant_when`): every cell is without a "
            "planted instruction, so there is no planted condition to set false alarms against; "
            f"`{primary}` in each cell is under Results."
        )
    return (
        "Every cell carries a planted instruction: the design has no cell without one, so "
        "false alarms cannot be counted."
    )


def _plants_into_system(protocol: Protocol) -> bool:
    into, turns = protocol.materials.plant_into, protocol.materials.templates
    return into != "document" and isinstance(turns, list) and turns[into].role == "system"


def stimulus_shape(protocol: Protocol) -> str:
    """One sentence for the design section: what each item's input was made of."""
    t = protocol.materials.templates
    if isinstance(t, Templates):
        out = "a system prompt and one user message"
    else:
        roles = [_turn_name(x) for x in t]
        calls = 1 + generated_turns(protocol)
        out = f"a conversation of {len(t)} turns ({', '.join(roles)}), {calls} subject call"
        out += "s per item" if calls > 1 else " per item"
    if protocol.tools:
        out += f"; tools declared to the subject: {', '.join(x.name for x in protocol.tools)}"
        out += " (never executed: a call in a reply is part of the response)"
    if protocol.materials.plant_when is not None:
        into = protocol.materials.plant_into
        out += "; plants go into " + ("the document" if into == "document" else f"turn {into}")
    return out


def _turn_name(turn: Turn) -> str:
    if turn.tool_use is not None:
        return f"tool_use {turn.tool_use.name}"
    return turn.role if turn.source is not None else "assistant (generated)"


def _possibly_paid(by_stage: dict[str, PossiblyPaid]) -> dict[str, Any] | None:
    """The calls a killed process may have paid for without recording them: the sentence and
    the estimated totals; None when there are none (the report then shows nothing extra)."""
    text = possibly_paid_text(by_stage)
    if text is None:
        return None
    return {"text": text, **asdict(PossiblyPaid.total(by_stage.values()))}


def _rows(rows: list[dict[str, Any]] | None, keys: str) -> list[dict[str, Any]] | None:
    """Rows with every expected key (None where a producer left one out)."""
    if rows is None:
        return None
    return [{**dict.fromkeys(keys.split()), **r} for r in rows]


def _qualitative(
    data: dict[str, Any] | None, order: list[str], offline: bool
) -> dict[str, Any] | None:
    """The analyst's section with every expected key; the cells it sampled in `order`; each
    removed quote once (an older qualitative.json may list one per place it was cited);
    `offline` when the offline model wrote it (the templates label it so)."""
    if data is None or "skipped" in data:
        return data
    sampled = data.get("sampled") or {}
    rank = {cell: n for n, cell in enumerate(order)}
    sections = []
    for s in data.get("sections") or []:
        quotes = _rows(s.get("quotes") or [], "item_id quote cell")
        sections.append({**dict.fromkeys(("title", "text")), **s, "quotes": quotes})
    blank = dict.fromkeys(("model", "focus", "overview", "limitations", "error"))
    once: dict[tuple[str, str], dict[str, Any]] = {}
    for r in _rows(data.get("removed") or [], "item_id quote reason") or []:
        once.setdefault((str(r["item_id"]), " ".join(str(r["quote"]).split())), r)
    return {
        **blank,
        "withheld": [],
        **data,
        "offline": offline,
        "sections": sections,
        "removed": list(once.values()),
        "sampled": dict(sorted(sampled.items(), key=lambda kv: rank.get(kv[0], len(rank)))),
    }


_FORECAST_CELL = "cell subject levels n assumed_rate half_width"
_FORECAST_CONTRAST = (
    "name subject outcome n_treatment n_control assumed_treatment assumed_control half_width"
)
_COST = ("input_tokens", "output_tokens", "online_usd", "batch_usd")


def forecast_rows(f: dict[str, Any] | None, a: AnalysisResult) -> dict[str, Any] | None:
    """The design checkpoint's forecast next to what the run found, per cell and contrast."""
    if f is None:
        return None
    rows = []
    for fc in _rows(f.get("cells") or [], _FORECAST_CELL) or []:
        cell = a.cell(fc.get("cell")) if isinstance(fc.get("cell"), str) else None
        o = cell.outcomes.get(a.primary) if cell else None
        actual = {"actual_n": None, "rate": None, "actual_half": None}
        if o is not None:
            actual = {"actual_n": o.n, "rate": o.rate, "actual_half": _half(o.lo, o.hi)}
        rows.append({**fc, **actual})
    by_key = {(c.name, c.subject, c.outcome): c for c in a.contrasts}
    contrasts = []
    for fc in _rows(f.get("contrasts") or [], _FORECAST_CONTRAST) or []:
        c = by_key.get((fc.get("name"), fc.get("subject"), fc.get("outcome")))
        contrasts.append({**fc, **_contrast_actual(c)})
    cost = {**dict.fromkeys(_COST), "lines": [], **(f.get("cost") or {})}
    return {"cells": rows, "contrasts": contrasts, "cost": cost, "created": f.get("created")}


def _contrast_actual(c: ContrastResult | None) -> dict[str, Any]:
    if c is None:
        keys = ("actual_nt", "actual_nc", "rate_t", "rate_c", "diff", "actual_half")
        return dict.fromkeys(keys)
    return {
        "actual_nt": c.treatment.n,
        "actual_nc": c.control.n,
        "rate_t": c.treatment.rate,
        "rate_c": c.control.rate,
        "diff": c.diff,
        "actual_half": _half(c.lo, c.hi),
    }


def _half(lo: float | None, hi: float | None) -> float | None:
    return None if lo is None or hi is None else (hi - lo) / 2
