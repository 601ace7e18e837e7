"""The report: plots, report.md and a self-contained report.html, plus the jsonl exports.

Both documents render one context (report_context.py: the `AnalysisResult` itself plus what
other stages leave) through Jinja2 templates (templates/report.md.j2 and report.html.j2) with
the filters defined here. `research report RUN` rebuilds all of it: a report can always be
remade from records.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from memory import write_atomic
from orchestrator.analysis import AnalysisResult
from orchestrator.analysis.decision_text import decision_word, interval_text, short
from orchestrator.plots import drawn_figures, make_plots
from orchestrator.protocol.schema import Protocol
from orchestrator.report_context import report_context
from orchestrator.rundir import RunDir

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


def inline_markup(text: object) -> Markup:
    """The report's own inline markup (`code`, **bold**) as HTML, everything else escaped."""
    html = str(escape(str(text)))
    html = _CODE.sub(r"<code>\1</code>", html)
    return Markup(_BOLD.sub(r"<strong>\1</strong>", html))


def _paras(text: object) -> Markup:
    blocks = [b.strip() for b in re.split(r"\n\s*\n", str(text or "")) if b.strip()]
    return Markup("".join(f"<p>{inline_markup(b)}</p>" for b in blocks))


def _slug(title: str) -> str:
    """The anchor GitHub gives a markdown heading."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def _tokens(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}"


def _usd(x: float | None) -> str:
    return "—" if x is None else f"${x:,.4f}"


def _yesno(x: bool | None) -> str:
    return "—" if x is None else ("yes" if x else "no")


_env.filters.update(
    pct=_pct,
    signed=_signed,
    num=_num,
    pval=_pval,
    cell=_cell,
    inline=inline_markup,
    paras=_paras,
    slug=_slug,
    tokens=_tokens,
    usd=_usd,
    yesno=_yesno,
    short=short,
    estimate=interval_text,
    decision=decision_word,
)


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
    run: RunDir, protocol: Protocol, analysis: AnalysisResult, *, redraw: bool = True
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
