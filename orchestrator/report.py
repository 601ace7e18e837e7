"""The report: plots, report.md and a self-contained report.html, plus the jsonl exports.

Both documents render one context through Jinja2 templates (templates/report.md.j2 and
report.html.j2). The context is built here from the records, analysis.json and the artifacts
other stages leave (agreement, forecast, qualitative); each of those may be absent — a run cut
short, an older run, a stage the protocol skips — and then its section says so instead of failing.
`research report RUN` rebuilds all of it: a report can always be remade from records.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from memory import write_atomic
from orchestrator.analysis import primary_verdicts
from orchestrator.plots import drawn_figures, make_plots
from orchestrator.protocol.schema import Protocol
from orchestrator.rundir import RunDir, analysis_sha256
from orchestrator.usage import usage_totals

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=StrictUndefined,
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _signed(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:+.1f}"


def _num(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _pval(x: float | None) -> str:
    return "—" if x is None else ("<0.001" if x < 0.001 else f"{x:.3f}")


def _cell(x: object) -> str:
    """Text made safe for a markdown table cell."""
    return " ".join(str(x).split()).replace("|", "\\|")


_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


def _inline(text: object) -> Markup:
    """The report's own inline markup (`code`, **bold**) as HTML, everything else escaped."""
    html = str(escape(str(text)))
    html = _CODE.sub(r"<code>\1</code>", html)
    return Markup(_BOLD.sub(r"<strong>\1</strong>", html))


def _paras(text: object) -> Markup:
    blocks = [b.strip() for b in re.split(r"\n\s*\n", str(text or "")) if b.strip()]
    return Markup("".join(f"<p>{_inline(b)}</p>" for b in blocks))


def _slug(title: str) -> str:
    """The anchor GitHub gives a markdown heading."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def _tokens(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}"


def _usd(x: float | None) -> str:
    return "—" if x is None else f"${x:,.4f}"


def _yesno(x: bool | None) -> str:
    return "—" if x is None else ("yes" if x else "no")


_env.filters.update(pct=_pct, signed=_signed, num=_num, pval=_pval, cell=_cell, inline=_inline,
                    paras=_paras, slug=_slug, tokens=_tokens, usd=_usd, yesno=_yesno)  # fmt: skip


def export_records(run: RunDir) -> dict[str, int]:
    """Write items, responses and verdicts as jsonl under artifacts/ (text, so git keeps them)."""
    rec = run.records
    responses = rec.responses()
    screen = rec.screen()
    rows = {
        "items.jsonl": [asdict(i) for i in rec.items()],
        "responses.jsonl": [
            {**asdict(r), "screen": screen.get(r.item_id, [])} for r in responses.values()
        ],
        "verdicts.jsonl": [asdict(v) for v in rec.verdicts(None)],
    }
    for name, data in rows.items():
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in data)
        write_atomic(run.path("artifacts", name), text)
    return {name: len(data) for name, data in rows.items()}


def write_report(
    run: RunDir, protocol: Protocol, analysis: dict[str, Any], *, redraw: bool = True
) -> Path:
    """Write the exports, the plots, report.md and report.html; return report.md's path.
    `redraw=False` reuses the figures already drawn (when only decisions or flags changed)."""
    export_records(run)
    figures = (None if redraw else drawn_figures(run)) or make_plots(run, protocol, analysis)
    context = report_context(run, protocol, analysis, figures)
    write_atomic(run.path("report.md"), _env.get_template("report.md.j2").render(**context))
    for fig in figures:  # only the HTML carries the images themselves
        data = base64.b64encode(run.path(fig["path"]).read_bytes()).decode()
        fig["data_uri"] = f"data:image/png;base64,{data}"
    write_atomic(run.path("report.html"), _env.get_template("report.html.j2").render(**context))
    return run.path("report.md")


SECTIONS = {
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
    "forecast": "no `artifacts/forecast.json` (the design checkpoint writes it)",
    "models": "the analysis has no regression models",
    "false_alarms": "the analysis has no false-alarm table",
    "missing": "the analysis has no missing-data table",
    "agreement": "no `artifacts/agreement.json` (the evaluate stage writes it)",
    "probes": "no probe readouts (the protocol runs no probes, or none succeeded)",
    "association": "the analysis did not relate readouts to verdicts",
    "qualitative": "no `artifacts/qualitative.json` (the protocol asks for no qualitative "
    "analysis, or it has not run)",
}
"""Why a section whose input is absent is empty."""


def _read(run: RunDir, name: str) -> dict[str, Any] | None:
    path = run.path("artifacts", name)
    return json.loads(path.read_text()) if path.exists() else None


def report_context(
    run: RunDir, protocol: Protocol, analysis: dict[str, Any], figures: list[dict[str, str]]
) -> dict[str, Any]:
    """Everything the templates show, with each optional input present or None."""
    rec = run.records
    primary = analysis.get("primary") or protocol.analysis.primary
    a = {
        "primary": primary,
        "outcomes": analysis.get("outcomes") or protocol.outcomes,
        "cells": analysis.get("cells") or [],
        "contrasts": [
            {"p_adjusted": None, "rejected": None, **c} for c in analysis.get("contrasts") or []
        ],
        "totals": {"items": 0, "scored": 0, "unscored": 0, **(analysis.get("totals") or {})},
        "correction": analysis.get("correction"),
        "models": [_model(m) for m in analysis["models"]] if "models" in analysis else None,
        "false_alarms": _rows(analysis.get("false_alarms"), "cell subject levels n k rate lo hi"),
        "missing": _rows(
            analysis.get("missing"), "cell subject levels items scored unscored reasons bounds"
        ),
        "probes": _probes(analysis.get("probes")),
    }
    m = run.manifest
    amendments = _amendments(run)
    agreement = _read(run, "agreement.json")
    qualitative = _read(run, "qualitative.json")
    batches = rec.batches()
    return {
        "why": NOT_AVAILABLE,
        "p": protocol,
        "m": m,
        "a": a,
        "sec": {k: v.format(primary=primary) for k, v in SECTIONS.items()},
        "factors": list(protocol.design.factors),
        "n_per_cell": protocol.design.pilot_n_per_cell if run.pilot else protocol.design.n_per_cell,
        "batches": {
            "n": len(batches),
            "largest": max((len(b.items) for b in batches), default=0),
            "evaluators": len({b.evaluator for b in batches}),
        },
        "deviations": deviations(run, protocol, a, amendments),
        "amendments": amendments,
        "forecast": _forecast(_read(run, "forecast.json"), a),
        "agreement": _agreement(agreement),
        "qualitative": _qualitative(qualitative),
        "figures": figures,
        "flags": rec.flags(),
        "decisions": rec.decisions(),
        "limitations": _limitations(run, a, agreement, qualitative),
        "usage": usage_totals(run),
        "usage_by_stage": rec.usage(),
        "hashes": {
            "preregistered": m.preregistered_sha256,
            "analysis": analysis_sha256(run.loaded.protocol),
        },
    }


def _rows(rows: list[dict[str, Any]] | None, keys: str) -> list[dict[str, Any]] | None:
    """Rows with every expected key (None where a producer left one out)."""
    if rows is None:
        return None
    return [{**dict.fromkeys(keys.split()), **r} for r in rows]


def _agreement(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    keys = "overlap_n agree kappa alpha self_n self_agree"
    fields = {name: _rows([f], keys)[0] for name, f in (data.get("fields") or {}).items()}
    return {"overlap_items": 0, "duplicates": 0, **data, "fields": fields,
            "pairs": _rows(data.get("pairs") or [], "a b n agree kappa")}  # fmt: skip


def _qualitative(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None or "skipped" in data:
        return data
    sections = [
        {**dict.fromkeys(("title", "text")), **s,
         "quotes": _rows(s.get("quotes") or [], "item_id quote cell")}
        for s in data.get("sections") or []
    ]  # fmt: skip
    return {**dict.fromkeys(("model", "focus", "overview", "limitations", "error")), **data,
            "sections": sections, "removed": _rows(data.get("removed") or [],
                                                   "item_id quote reason"),
            "sampled": data.get("sampled") or {}}  # fmt: skip


def _model(m: dict[str, Any]) -> dict[str, Any]:
    """A regression model with odds-ratio intervals and its interaction term marked."""
    import math

    def exp(x: float | None) -> float | None:
        return None if x is None else math.exp(min(x, 700.0))

    coefs = [
        {**c, "or_lo": exp(c.get("lo")), "or_hi": exp(c.get("hi")),
         "interaction": c.get("term") == m.get("interaction")}
        for c in m.get("coefficients") or []
    ]  # fmt: skip
    keys = "name outcome formula terms n clusters cluster interaction error"
    return {**_rows([m], keys)[0], "within": m.get("within") or {},
            "reference": m.get("reference") or {}, "coefficients": coefs}  # fmt: skip


def _probes(probes: dict[str, Any] | None) -> dict[str, Any] | None:
    if not probes or not probes.get("metrics"):
        return None
    keys = "metric outcome n n_pos n_neg auroc p mean_pos mean_neg"
    return {"models": [], "groups": {}, "labels": {}, "cells": {}, **probes,
            "association": _rows(probes.get("association"), keys)}  # fmt: skip


def _forecast(f: dict[str, Any] | None, a: dict[str, Any]) -> dict[str, Any] | None:
    """The design checkpoint's forecast next to what the run found, per cell and contrast."""
    if f is None:
        return None
    primary = a["primary"]
    cells = {c["cell"]: c for c in a["cells"]}
    rows = []
    for fc in _rows(f.get("cells") or [], "cell subject levels n assumed_rate half_width") or []:
        o = (cells.get(fc.get("cell")) or {}).get("outcomes", {}).get(primary) or {}
        rows.append({**fc, "actual_n": o.get("n"), "rate": o.get("rate"),
                     "actual_half": _half(o.get("lo"), o.get("hi"))})  # fmt: skip
    by_key = {(c["name"], c["subject"], c["outcome"]): c for c in a["contrasts"]}
    contrasts = []
    keys = "name subject outcome n_treatment n_control assumed_treatment assumed_control half_width"
    for fc in _rows(f.get("contrasts") or [], keys) or []:
        c = by_key.get((fc.get("name"), fc.get("subject"), fc.get("outcome"))) or {}
        t, k = c.get("treatment") or {}, c.get("control") or {}
        contrasts.append({**fc, "actual_nt": t.get("n"), "actual_nc": k.get("n"),
                          "rate_t": t.get("rate"), "rate_c": k.get("rate"), "diff": c.get("diff"),
                          "actual_half": _half(c.get("lo"), c.get("hi"))})  # fmt: skip
    cost = {"input_tokens": None, "output_tokens": None, "online_usd": None, "batch_usd": None,
            "lines": [], **(f.get("cost") or {})}  # fmt: skip
    return {"cells": rows, "contrasts": contrasts, "cost": cost, "created": f.get("created")}


def _half(lo: float | None, hi: float | None) -> float | None:
    return None if lo is None or hi is None else (hi - lo) / 2


def _amendments(run: RunDir) -> list[dict[str, Any]]:
    return [asdict(row) for row in run.records.amendments()]


def deviations(
    run: RunDir, protocol: Protocol, a: dict[str, Any], amendments: list[dict[str, Any]]
) -> list[str]:
    """What a reader should know went differently from the plan, from records and LOG.md."""
    rec, m, out = run.records, run.manifest, []
    design = run.loaded.protocol.design
    if m.size == "pilot":
        out.append(f"Pilot size: {design.pilot_n_per_cell} items per cell instead of the planned "
                   f"{design.n_per_cell}.")  # fmt: skip
    if m.offline:
        planned = ", ".join(f"`{s.model}`" for s in run.loaded.protocol.subjects)
        out.append(f"Offline: the subjects ({planned}) and the judge were replaced by the local "
                   f"model `{m.local_model}`.")  # fmt: skip
    items = rec.items()
    verdicts = primary_verdicts(rec.verdicts())
    reasons = Counter(
        (verdicts[i.id].reason or "no reason given") if i.id in verdicts else "no verdict"
        for i in items
        if i.id not in verdicts or verdicts[i.id].status != "scored"
    )
    if reasons:
        listed = "; ".join(f"{r} ({n})" for r, n in reasons.most_common(5))
        out.append(f"{sum(reasons.values())} of {len(items)} items have no scored verdict and are "
                   f"left out of the rates: {listed}.")  # fmt: skip
    entries = run.log.entries()
    for e in entries:
        if e.kind == "replaced":
            out.append(f"Evaluator replaced: {e.text}")
    failed = [c for c in rec.comprehension() if not c.passed]
    if failed:
        who = ", ".join(sorted({c.evaluator for c in failed}))
        out.append(f"{len(failed)} failed comprehension check attempt(s) ({who}).")
    restarts = []
    for name in sorted({b.evaluator for b in rec.batches()}):
        later = [s.reason for s in rec.sessions(name) if s.continued]
        if later:
            restarts.append(f"{name} ({', '.join(later)})")
    if restarts:
        out.append("Evaluators continued in a fresh conversation from their notes: "
                   + "; ".join(restarts) + ".")  # fmt: skip
    for d in rec.decisions():
        if d.decision != "approve":
            out.append(f"Checkpoint `{d.checkpoint}` {d.decision}ed by {d.by}" +
                       (f": “{d.note}”" if d.note else "."))  # fmt: skip
        elif d.by == "--yes":
            out.append(f"Checkpoint `{d.checkpoint}` approved automatically (`--yes`), without a "
                       "human review.")  # fmt: skip
        elif d.note:
            out.append(f"Checkpoint `{d.checkpoint}` approved by {d.by} with a note: “{d.note}”")
    stops = sum(e.kind == "interrupted" for e in entries)
    if stops:
        out.append(f"The run was interrupted {stops} time(s) and resumed; recorded calls were "
                   "not made again.")  # fmt: skip
    for e in entries:
        if e.kind == "error":
            out.append(f"Error in `{e.stage}`: {' '.join(e.text.split())[:300]}")
    open_flags = [f for f in rec.flags() if not f.resolution]
    if open_flags:
        out.append(f"{len(open_flags)} flag(s) still open (see Flags).")
    approved = [x for x in amendments if x["status"] == "approved"]
    if approved:
        out.append(f"The pre-registered analysis was amended {len(approved)} time(s) (below).")
    return out


def _limitations(
    run: RunDir,
    a: dict[str, Any],
    agreement: dict[str, Any] | None,
    qualitative: dict[str, Any] | None,
) -> list[str]:
    m, out = run.manifest, []
    if m.size == "pilot":
        out.append("Pilot size: intervals are wide; treat every difference as provisional.")
    if m.offline:
        out.append(f"Offline run: subjects and judge are the local model `{m.local_model}`, a "
                   "small instruction-tuned model. The pipeline is exercised end to end; the "
                   "numbers say nothing about frontier models.")  # fmt: skip
    t = a["totals"]
    if t["unscored"]:
        out.append(f"{t['unscored']} of {t['items']} items are unscored and excluded from the "
                   "rates; the missing-data bounds show how far they could move them, and "
                   "`artifacts/verdicts.jsonl` gives each reason.")  # fmt: skip
    if agreement is None:
        out.append("Agreement between evaluators was not measured for this run.")
    else:
        f = (agreement.get("fields") or {}).get(a["primary"]) or {}
        n = f.get("overlap_n", agreement.get("overlap_items", 0))
        if f.get("kappa") is None:
            out.append(f"Agreement between evaluators rests on {n} overlap item(s); Cohen's κ "
                       "is undefined there, so only raw agreement is reported.")  # fmt: skip
        elif n < 30:
            out.append(f"Agreement between evaluators rests on only {n} overlap items.")
    if a["probes"]:
        out.append("Truesight readouts come from "
                   + ", ".join(f"`{x}`" for x in a["probes"]["models"])
                   + "; their associations with verdicts are exploratory (p-values not corrected "
                   "for the number of metrics).")  # fmt: skip
    if a["correction"] is None and a["contrasts"]:
        out.append("Contrast p-values are not corrected for multiple comparisons.")
    if qualitative and qualitative.get("limitations"):
        out.append(f"Qualitative analysis: {' '.join(str(qualitative['limitations']).split())}")
    return out
