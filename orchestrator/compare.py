"""Two runs' main results side by side: `research compare RUN_A RUN_B`.

Each run's numbers come from its own analysis.json (rebuilt from records if missing), so runs of
different code versions or amended analyses compare as each reported itself. Cells and contrasts
are matched by name; what only one run has is shown against a dash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from orchestrator.rundir import RunDir


@dataclass(frozen=True)
class Side:
    run_id: str
    protocol_id: str
    protocol_sha256: str
    size: str
    models: list[str]
    status: str
    analysis: dict[str, Any]


def load_side(run: RunDir) -> Side:
    path = run.path("artifacts", "analysis.json")
    if path.exists():
        analysis = json.loads(path.read_text())
    else:  # a run stopped before its analysis: compute it from what was recorded
        from orchestrator.analysis import analyze_records
        from orchestrator.context import as_run

        m = run.manifest
        protocol = as_run(run.loaded.protocol, offline=m.offline, local_model=m.local_model)
        analysis = analyze_records(protocol, run.records)
    m = run.manifest
    size = m.size + (f", offline ({m.local_model})" if m.offline else "")
    return Side(run.id, m.protocol_id, m.protocol_sha256, size, m.models, m.status, analysis)


def _rate(o: dict[str, Any] | None) -> str:
    if not o or o.get("rate") is None:
        return "—"
    return f"{100 * o['rate']:.1f}% [{100 * o['lo']:.1f}, {100 * o['hi']:.1f}] n={o['n']}"


def _diff(x: dict[str, Any] | None) -> str:
    if not x or x.get("diff") is None:
        return "—"
    p = x.get("p_adjusted", x.get("fisher_p"))
    p_text = f", p={p:.3g}" if p is not None else ""
    return f"{100 * x['diff']:+.1f} [{100 * x['lo']:+.1f}, {100 * x['hi']:+.1f}]{p_text}"


def compare(a: Side, b: Side) -> dict[str, Any]:
    """Rows of the comparison: the primary outcome per cell and in each contrast, and the
    models' interaction terms."""
    primary = a.analysis.get("primary")
    notes = []
    if b.analysis.get("primary") != primary:
        notes.append(
            f"The primary outcomes differ ({primary} vs {b.analysis.get('primary')}); rows "
            "compare each run's own primary outcome."
        )
    if a.protocol_sha256 != b.protocol_sha256:
        notes.append("The runs used different protocol files (see their sha256).")

    def cell_map(s: Side) -> dict[str, dict[str, Any]]:
        p = s.analysis.get("primary")
        return {c["cell"]: c["outcomes"].get(p) for c in s.analysis.get("cells", [])}

    def contrast_map(s: Side) -> dict[str, dict[str, Any]]:  # on the primary outcome
        return {
            f"{c['name']} · {c['subject']}": c
            for c in s.analysis.get("contrasts", [])
            if c["outcome"] == s.analysis.get("primary")
        }

    def interaction_map(s: Side) -> dict[str, dict[str, Any]]:
        out = {}
        for m in s.analysis.get("models", []):
            coef = next(
                (c for c in m.get("coefficients", []) if c["term"] == m.get("interaction")), None
            )
            out[f"{m['name']}: {m.get('interaction') or 'interaction'}"] = (
                {"error": m["error"]} if m.get("error") else coef or {}
            )
        return out

    ca, cb = cell_map(a), cell_map(b)
    cells = [(k, _rate(ca.get(k)), _rate(cb.get(k))) for k in _union(ca, cb)]
    xa, xb = contrast_map(a), contrast_map(b)
    contrasts = [(k, _diff(xa.get(k)), _diff(xb.get(k))) for k in _union(xa, xb)]
    ma, mb = interaction_map(a), interaction_map(b)
    models = [(k, _coef(ma.get(k)), _coef(mb.get(k))) for k in _union(ma, mb)]
    return {
        "primary": primary,
        "runs": [_meta(a), _meta(b)],
        "cells": cells,
        "contrasts": contrasts,
        "models": models,
        "notes": notes,
    }


def _coef(c: dict[str, Any] | None) -> str:
    if not c:
        return "—"
    if c.get("error"):
        return f"not estimable: {c['error']}"
    return f"{c['coef']:+.2f} [{c['lo']:+.2f}, {c['hi']:+.2f}], p={c['p']:.3g}"


def _union(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys([*a, *b]))


def _meta(s: Side) -> dict[str, str]:
    t = s.analysis.get("totals", {})
    return {
        "run": s.run_id,
        "protocol": f"{s.protocol_id} ({s.protocol_sha256[:12]})",
        "size": s.size,
        "status": s.status,
        "models": ", ".join(s.models),
        "items": f"{t.get('items', '?')} ({t.get('scored', '?')} scored, "
        f"{t.get('unscored', '?')} unscored)",
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
