"""Two runs' main results side by side: `research compare RUN_A RUN_B`.

Each run's numbers come from its own analysis.json (rebuilt from records if missing), so runs of
different code versions or amended analyses compare as each reported itself. Cells and contrasts
are matched by name; what only one run has is shown against a dash. Each run's p-values were
adjusted within its own family of tests, so each has its own, named, p column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.analysis import AnalysisResult, analyze_records, load_analysis
from orchestrator.analysis.result import (
    CellRate,
    Coefficient,
    ContrastResult,
    PooledContrast,
    TermTest,
)
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
    root: Path | None = None
    """The run directory, resolved (None for a side built in code)."""
    origin: str = ""
    """The run id and creation time its manifest records: a copied run keeps them."""


def load_side(run: RunDir) -> Side:
    path = run.path("artifacts", "analysis.json")
    m = run.manifest
    if path.exists():
        analysis = load_analysis(path)
    else:  # a run stopped before its analysis: compute it from what was recorded
        protocol = as_run(run.loaded.protocol, offline=m.offline, local_model=m.local_model)
        analysis = analyze_records(protocol, run.records)
    size = m.size + (f", offline ({m.local_model})" if m.offline else "")
    return Side(
        run.id,
        m.protocol_id,
        m.protocol_sha256,
        size,
        m.models,
        m.status,
        analysis,
        run.root.resolve(),
        f"run `{m.run_id}` created {m.created}",
    )


def _rate(o: CellRate | None) -> str:
    if o is None or o.rate is None or o.lo is None or o.hi is None:
        return "—"
    return f"{100 * o.rate:.1f}% [{100 * o.lo:.1f}, {100 * o.hi:.1f}] n={o.n}"


Row = ContrastResult | PooledContrast
"""A row of the contrasts table: one subject's contrast, or the contrast pooled over subjects."""


def _diff(x: Row | None) -> str:
    value = x.diff if isinstance(x, ContrastResult) else (x.estimate if x else None)
    if x is None or value is None or x.lo is None or x.hi is None:
        return "—"
    return f"{100 * value:+.1f} [{100 * x.lo:+.1f}, {100 * x.hi:+.1f}]"


def _p(x: Row | None, adjusted: bool) -> str:
    raw = x.fisher_p if isinstance(x, ContrastResult) else (x.p if x else None)
    p = None if x is None else (x.p_adjusted if adjusted else raw)
    return "—" if p is None else f"{p:.3g}"


METHODS = {"holm": "Holm", "bonferroni": "Bonferroni", "fdr_bh": "Benjamini–Hochberg"}


def _adjusted(r: AnalysisResult) -> bool:
    """Whether the run's p-values were adjusted (a file from before the correction was
    recorded, or a protocol with `correction: none`, has only Fisher's p)."""
    c = r.correction
    recorded = all("p_adjusted" in x.model_fields_set for x in r.contrasts)
    return c is not None and c.method != "none" and recorded


def p_column(s: Side) -> str:
    """The heading of a run's p column: which p it is, and over which family."""
    if not _adjusted(s.analysis):
        return f"p (Fisher, unadjusted; {s.run_id})"
    method = s.analysis.correction.method if s.analysis.correction else ""
    return f"p ({METHODS.get(method, method)}, within {s.run_id}'s family)"


def _family(s: Side) -> str:
    c = s.analysis.correction
    if not _adjusted(s.analysis) or c is None:
        return f"{s.run_id}: Fisher's exact p, not adjusted"
    method = METHODS.get(c.method, c.method)
    return f"{s.run_id}: {method} over {c.family}, up to {c.tests} tests"


@dataclass(frozen=True)
class Table:
    """One table of the comparison, as the terminal and the Markdown file show it."""

    title: str
    what: str
    """What an entry holds, in words."""
    columns: list[str]
    rows: list[list[str]]
    footnote: str = ""
    """Shown under the table: how to read a column."""


@dataclass(frozen=True)
class Comparison:
    """Two runs side by side: what `research compare` prints and writes."""

    primary: str
    runs: list[dict[str, str]]
    """Each run's id, protocol, size, status, models and item counts (`META`)."""
    tables: list[Table]
    notes: list[str]
    """What differs between the runs and how to read the p columns."""
    warnings: list[str]
    """Why the comparison may show nothing: the same run on both sides."""


def compare(a: Side, b: Side) -> Comparison:
    """Tables of the comparison: the primary outcome per cell (design order), each contrast on
    the outcomes it is named for (per subject, then pooled over subjects), with each run's p in
    its own column, and the models' interaction terms; notes on what differs between the runs."""
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
    cells = [[k, _rate(ca.get(k)), _rate(cb.get(k))] for k in _union(ca, cb)]
    xa, xb = _contrasts(a.analysis), _contrasts(b.analysis)
    pa, pb = _adjusted(a.analysis), _adjusted(b.analysis)
    contrasts = [
        [k, _diff(xa.get(k)), _p(xa.get(k), pa), _diff(xb.get(k)), _p(xb.get(k), pb)]
        for k in _union(xa, xb)
    ]
    p_note = (
        "p: each run's p-values are adjusted within that run's own family of tests ("
        f"{_family(a)}; {_family(b)}). The same difference can carry a different p in two "
        "runs whose families differ: compare the differences and their intervals, not the "
        "p-values across runs."
    )
    if any(k.endswith(POOLED) for k in xa | xb):
        p_note += (
            f" Rows labelled `{POOLED}`: the contrast pooled over every subject's items, the arm "
            "coefficient of OLS y ~ arm + C(subject) (a within-subject difference) with a 95% t "
            "interval and p from errors clustered by task; their p is adjusted within the run's "
            "pooled contrasts of that outcome."
        )
    ma, mb = _interactions(a.analysis), _interactions(b.analysis)
    models = [[k, _coef(ma.get(k)), _coef(mb.get(k))] for k in _union(ma, mb)]
    ra, rb = a.run_id, b.run_id
    return Comparison(
        primary=primary,
        runs=[_meta(a), _meta(b)],
        tables=[
            Table(f"{primary} by cell", "rate [95% Wilson CI]", ["cell", ra, rb], cells),
            Table(
                "Contrasts",
                "difference in points, treatment − control [95% Newcombe CI]; p as its column "
                "says (see below the table)",
                ["contrast (outcome) · subject", f"{ra}: difference", p_column(a)]
                + [f"{rb}: difference", p_column(b)],
                contrasts,
                p_note,
            ),
            Table(
                "Interactions",
                "log-odds coefficient [95% CI], Wald p (log cumulative odds for an ordinal "
                "outcome); an interaction of several coefficients: their joint Wald and "
                "likelihood-ratio χ² tests",
                ["model: term", ra, rb],
                models,
            ),
        ],
        notes=notes,
        warnings=same_run(a, b),
    )


def same_run(a: Side, b: Side) -> list[str]:
    """A warning when both sides are one run: the same directory, or copies of one run."""
    if a.root is not None and a.root == b.root:
        return [
            f"{a.run_id} and {b.run_id} are the same run directory ({a.root}): the run is "
            "compared with itself, so every difference is zero by construction."
        ]
    if a.origin and a.origin == b.origin:
        return [
            f"{a.run_id} and {b.run_id} are copies of one run ({a.origin}): unless one was "
            "amended or re-analysed since, their numbers are the same by construction."
        ]
    return []


def _cells(r: AnalysisResult) -> dict[str, CellRate | None]:
    return {c.cell: c.outcomes.get(r.primary) for c in r.cells}


POOLED = "· pooled"


def _contrasts(r: AnalysisResult) -> dict[str, Row]:
    """Each contrast on the outcomes it is named for, by name, outcome and subject, each
    followed by its estimate pooled over subjects (`· pooled`) where the run has one."""
    groups: dict[tuple[str, str], dict[str, Row]] = {}
    for c in r.contrasts:
        if c.named:
            groups.setdefault((c.name, c.outcome), {})[f"{c.name} ({c.outcome}) · {c.subject}"] = c
    for x in r.pooled or []:
        if x.named:
            groups.setdefault((x.name, x.outcome), {})[f"{x.name} ({x.outcome}) {POOLED}"] = x
    return {key: row for group in groups.values() for key, row in group.items()}


def _interactions(r: AnalysisResult) -> dict[str, Coefficient | TermTest | str | None]:
    """Each model's interaction: its coefficient when it has one, the joint test of its
    coefficients when it has several, or why the model has none (its error)."""
    out: dict[str, Coefficient | TermTest | str | None] = {}
    for m in r.models or []:
        name = m.interaction or m.interaction_term or "interaction"
        joint = m.top_test if m.interaction is None and m.interaction_term else None
        out[f"{m.name}: {name}"] = m.error or m.interaction_coefficient or joint
    return out


def _coef(c: Coefficient | TermTest | str | None) -> str:
    if c is None:
        return "—"
    if isinstance(c, str):
        return f"not estimable: {c}"
    if isinstance(c, TermTest):
        return f"joint {c.text}"
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


META = ("protocol", "size", "status", "models", "items")


def to_markdown(c: Comparison) -> str:
    a, b = c.runs
    lines = [f"# {a['run']} vs {b['run']}", ""]
    lines += [f"> **Warning:** {w}\n" for w in c.warnings]
    lines += ["| | " + a["run"] + " | " + b["run"] + " |", "| --- | --- | --- |"]
    for key in META:
        lines.append(f"| {key} | {a[key]} | {b[key]} |")
    for t in c.tables:
        if not t.rows:
            continue
        lines += ["", f"## {t.title}", "", f"Each entry: {t.what}.", ""]
        lines += ["| " + " | ".join(t.columns) + " |", "|" + " --- |" * len(t.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in t.rows]
        if t.footnote:
            lines += ["", f"*{t.footnote}*"]
    if c.notes:
        lines += ["", *[f"- {n}" for n in c.notes]]
    return "\n".join(lines) + "\n"
