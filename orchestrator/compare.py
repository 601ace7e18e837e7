"""Two runs' main results side by side: `research compare RUN_A RUN_B`.

Each run's numbers come from its own analysis.json (rebuilt from records if missing), so runs of
different code versions or amended analyses compare as each reported itself. Cells and contrasts
are matched by name; what only one run has is shown against a dash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.analysis import AnalysisResult, analyze_records, load_analysis
from orchestrator.analysis.result import CellRate, Coefficient, ContrastResult
from orchestrator.context import as_run
from orchestrator.rundir import RunDir


@dataclass(frozen=True)
class Side:
    run_id: str
    protocol_id: str
    protocol_sha256: str
    size: str
    models: list[str]
    status: str
    analysis: AnalysisResult


def load_side(run: RunDir) -> Side:
    path = run.path("artifacts", "analysis.json")
    m = run.manifest
    if path.exists():
        analysis = load_analysis(path)
    else:  # a run stopped before its analysis: compute it from what was recorded
        protocol = as_run(run.loaded.protocol, offline=m.offline, local_model=m.local_model)
        analysis = analyze_records(protocol, run.records)
    size = m.size + (f", offline ({m.local_model})" if m.offline else "")
    return Side(run.id, m.protocol_id, m.protocol_sha256, size, m.models, m.status, analysis)


def _rate(o: CellRate | None) -> str:
    if o is None or o.rate is None or o.lo is None or o.hi is None:
        return "—"
    return f"{100 * o.rate:.1f}% [{100 * o.lo:.1f}, {100 * o.hi:.1f}] n={o.n}"


def _diff(x: ContrastResult | None) -> str:
    if x is None or x.diff is None or x.lo is None or x.hi is None:
        return "—"
    # a file from before the correction was recorded has only the uncorrected p
    p = x.p_adjusted if "p_adjusted" in x.model_fields_set else x.fisher_p
    p_text = f", p={p:.3g}" if p is not None else ""
    return f"{100 * x.diff:+.1f} [{100 * x.lo:+.1f}, {100 * x.hi:+.1f}]{p_text}"


def compare(a: Side, b: Side) -> dict[str, Any]:
    """Rows of the comparison: the primary outcome per cell and in each contrast, and the
    models' interaction terms."""
    primary = a.analysis.primary
    notes = []
    if b.analysis.primary != primary:
        notes.append(
            f"The primary outcomes differ ({primary} vs {b.analysis.primary}); rows "
            "compare each run's own primary outcome."
        )
    if a.protocol_sha256 != b.protocol_sha256:
        notes.append("The runs used different protocol files (see their sha256).")
    ca, cb = _cells(a.analysis), _cells(b.analysis)
    cells = [(k, _rate(ca.get(k)), _rate(cb.get(k))) for k in _union(ca, cb)]
    xa, xb = _contrasts(a.analysis), _contrasts(b.analysis)
    contrasts = [(k, _diff(xa.get(k)), _diff(xb.get(k))) for k in _union(xa, xb)]
    ma, mb = _interactions(a.analysis), _interactions(b.analysis)
    models = [(k, _coef(ma.get(k)), _coef(mb.get(k))) for k in _union(ma, mb)]
    return {
        "primary": primary,
        "runs": [_meta(a), _meta(b)],
        "cells": cells,
        "contrasts": contrasts,
        "models": models,
        "notes": notes,
    }


def _cells(r: AnalysisResult) -> dict[str, CellRate | None]:
    return {c.cell: c.outcomes.get(r.primary) for c in r.cells}


def _contrasts(r: AnalysisResult) -> dict[str, ContrastResult]:
    """The contrasts on the primary outcome, by name and subject."""
    return {f"{c.name} · {c.subject}": c for c in r.contrasts if c.outcome == r.primary}


def _interactions(r: AnalysisResult) -> dict[str, Coefficient | str | None]:
    """Each model's interaction coefficient, or why the model has none (its error)."""
    out: dict[str, Coefficient | str | None] = {}
    for m in r.models or []:
        coef = next((c for c in m.coefficients if c.term == m.interaction), None)
        out[f"{m.name}: {m.interaction or 'interaction'}"] = m.error or coef
    return out


def _coef(c: Coefficient | str | None) -> str:
    if c is None:
        return "—"
    if isinstance(c, str):
        return f"not estimable: {c}"
    return f"{c.coef:+.2f} [{c.lo:+.2f}, {c.hi:+.2f}], p={c.p:.3g}"


def _union(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys([*a, *b]))


def _meta(s: Side) -> dict[str, str]:
    t = s.analysis.totals
    return {
        "run": s.run_id,
        "protocol": f"{s.protocol_id} ({s.protocol_sha256[:12]})",
        "size": s.size,
        "status": s.status,
        "models": ", ".join(s.models),
        "items": f"{t.items} ({t.scored} scored, {t.unscored} unscored)",
    }


def to_markdown(c: dict[str, Any]) -> str:
    a, b = c["runs"]
    lines = [f"# {a['run']} vs {b['run']}", ""]
    lines += ["| | " + a["run"] + " | " + b["run"] + " |", "| --- | --- | --- |"]
    for key in ("protocol", "size", "status", "models", "items"):
        lines.append(f"| {key} | {a[key]} | {b[key]} |")
    for title, rows, what in (
        (f"{c['primary']} by cell", c["cells"], "rate [95% Wilson CI]"),
        ("Contrasts", c["contrasts"], "difference in points [95% Newcombe CI], p"),
        ("Interactions", c["models"], "log-odds coefficient [95% CI], p"),
    ):
        if not rows:
            continue
        lines += ["", f"## {title}", "", f"Each entry: {what}.", ""]
        lines += [f"| | {a['run']} | {b['run']} |", "| --- | --- | --- |"]
        lines += [f"| {k} | {x} | {y} |" for k, x, y in rows]
    if c["notes"]:
        lines += ["", *[f"- {n}" for n in c["notes"]]]
    return "\n".join(lines) + "\n"
