"""analyze: the pre-registered statistics → analysis.json, then the analyst's qualitative
section → qualitative.json (one ledgered call, so re-running the node pays nothing)."""

from __future__ import annotations

from langgraph.runtime import Runtime

from orchestrator.analysis import AnalysisResult, analyze_records, save_analysis
from orchestrator.analysis.decision_text import headline
from orchestrator.analysis.result import ContrastResult, ModelFit, PooledContrast
from orchestrator.context import RunContext
from orchestrator.nodes.qualitative import write_qualitative
from orchestrator.progress import finish_stage
from orchestrator.state import RunState


def analyze(state: RunState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    folder = ctx.run.path("artifacts", "probes")
    result = analyze_records(ctx.protocol, ctx.run.records, probe_artifacts=folder)
    save_analysis(ctx.run.path("artifacts", "analysis.json"), result)
    lines = summary_lines(result)
    qualitative = write_qualitative(ctx, result)
    if qualitative.get("error"):
        lines.append(f"Qualitative section failed: {qualitative['error']}")
    elif "sections" in qualitative:
        kept = sum(len(s["quotes"]) for s in qualitative["sections"])
        lines.append(
            f"Qualitative section: {len(qualitative['sections'])} themes, {kept} quotes checked "
            f"verbatim, {len(qualitative['removed'])} removed."
        )
    t = result.totals
    finish_stage(
        ctx.run,
        "analyze",
        {"cells": len(result.cells), "contrasts": len(result.contrasts)},
        f"{t.scored} scored and {t.unscored} unscored items.\n" + "\n".join(lines),
    )
    return {"stage": "analyze"}


def summary_lines(result: AnalysisResult) -> list[str]:
    """The hypotheses' decisions, the primary outcome per cell, each contrast on the outcomes
    it is named for (per subject, then pooled over subjects), and the models' interactions, one
    a line."""
    primary = result.primary
    hypotheses = result.decisions.hypotheses if result.decisions else []
    lines = [f"- {h.id}: {headline(h)}" for h in hypotheses]
    for c in result.cells:
        o = c.outcomes[primary]
        rate = "n/a" if o.rate is None else f"{o.rate:.2f} [{o.lo:.2f}, {o.hi:.2f}]"
        lines.append(f"- {c.cell}: {primary} {rate} (n={o.n}, unscored {o.unscored})")
    method = result.correction.method if result.correction else None
    for c in result.contrasts:
        if c.diff is not None and c.named:  # on the outcomes it is named for
            lines.append(_contrast_line(c, method))
    pooled_method = result.pooled_correction.method if result.pooled_correction else None
    for p in result.pooled or []:
        if p.named:
            lines.append(_pooled_line(p, pooled_method))
    for m in result.models or []:
        line = _model_line(m)
        if line is not None:
            lines.append(line)
    if (line := _human_line(result)) is not None:
        lines.append(line)
    return lines


def _human_line(result: AnalysisResult) -> str | None:
    """The judges against human labels on the primary outcome, when there are labels."""
    f = result.calibration.fields.get(result.primary) if result.calibration else None
    if f is None or not f.n or f.sensitivity is None or f.specificity is None:
        return None
    se, sp = f.sensitivity.value, f.specificity.value
    num = "n/a" if se is None else f"{se:.2f}"
    spec = "n/a" if sp is None else f"{sp:.2f}"
    kappa = "n/a" if f.kappa is None else f"{f.kappa:.2f}"
    return (
        f"- judges vs human labels on {result.primary}: sensitivity {num}, specificity {spec}, "
        f"κ {kappa} (n={f.n}); corrected rates in analysis.json `calibration`"
    )


def _contrast_line(c: ContrastResult, method: str | None) -> str:
    assert c.diff is not None and c.lo is not None and c.hi is not None
    line = (
        f"- {c.name} ({c.subject}, {c.outcome}): {100 * c.diff:+.1f} points "
        f"[{100 * c.lo:+.1f}, {100 * c.hi:+.1f}], p={c.fisher_p:.3g}"
    )
    if c.p_adjusted is not None:
        line += f" ({method}: {c.p_adjusted:.3g})"
    return line


def _pooled_line(p: PooledContrast, method: str | None) -> str:
    """A contrast pooled across subjects, or why it has no estimate."""
    head = f"- {p.name} (pooled over subjects, {p.outcome})"
    if p.estimate is None or p.lo is None or p.hi is None or p.p is None:
        return f"{head}: not estimated ({p.error})"
    line = (
        f"{head}: {100 * p.estimate:+.1f} points [{100 * p.lo:+.1f}, {100 * p.hi:+.1f}], "
        f"p={p.p:.3g}"
    )
    if p.p_adjusted is not None:
        line += f" ({method}: {p.p_adjusted:.3g})"
    return line + f"; {p.n} items, {p.tasks} tasks, subject fixed effects, SE clustered by task"


def _model_line(m: ModelFit) -> str | None:
    """The model's interaction: its coefficient (one) or the joint test of its coefficients
    (several); a one-term model's joint test of its term."""
    if m.error:
        return f"- model {m.name}: not estimable ({m.error})"
    clusters = f"(SE clustered by {m.cluster}, {m.clusters or 'no'} clusters)"
    term = m.interaction_coefficient
    if term is not None:
        return (
            f"- model {m.name}: {term.term} {term.coef:+.2f} {m.scale} "
            f"[{term.lo:+.2f}, {term.hi:+.2f}], p={term.p:.3g} {clusters}"
        )
    test = m.top_test
    if test is None:
        return None
    return f"- model {m.name} ({m.family}): {test.term} joint {test.text} {clusters}"
