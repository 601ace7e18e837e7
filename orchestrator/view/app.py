"""`create_app(runs_root, run_id)`: the run viewer, a FastAPI app of server-rendered pages.

    /                           the runs (or, given a run, that run's page)
    /runs                       the runs under runs_root, newest first
    /runs/{run}                 stage status, the results table from analysis.json, hypotheses
    /runs/{run}/cells/{cell}    its items and verdicts; ?outcome=&agreement=&flag= filter them
    /runs/{run}/items/{item}    prompt (plant marked), response (evidence marked), verdicts,
                                flags, probe readouts, overlap and duplicate pairs

Read-only throughout: records.sqlite is opened `mode=ro` for each request and never locked, so
the viewer runs beside a run in progress and shows it as it stands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from orchestrator.analysis.decision_text import decision_word, interval_text, short
from orchestrator.manifest import program_line
from orchestrator.report import inline_markup
from orchestrator.report_banner import banners, status_text
from orchestrator.view.cells import Filters, cell_rows, flag_choices, keep
from orchestrator.view.item import item_view
from orchestrator.view.queries import RunData, list_runs, open_run

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=StrictUndefined,
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _value(x: Any) -> str:
    """A verdict field's value as a reader sees it."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if x is None:
        return "—"
    return x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)


def _readout(result: dict[str, Any] | None) -> Markup:
    """A probe readout's result: indented JSON."""
    return Markup("<pre>{}</pre>").format(json.dumps(result, indent=2, ensure_ascii=False))


_env.filters.update(
    inline=inline_markup,
    pct=_pct,
    value=_value,
    readout=_readout,
    short=short,
    estimate=interval_text,
    decision=decision_word,
)


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**context), status_code=status)


def _missing(what: str) -> HTMLResponse:
    return _page("missing.html.j2", 404, what=what)


def create_app(runs_root: Path, run_id: str | None = None) -> FastAPI:
    """The viewer over the runs under `runs_root`; `run_id` makes `/` open that run."""
    root = Path(runs_root)
    app = FastAPI(title="research view", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(404)
    def no_page(request: Request, exc: Exception) -> HTMLResponse:
        return _missing(f"no page {request.url.path}")

    def opened(run: str) -> RunData | None:
        return open_run(root, run)

    @app.get("/", response_model=None)
    def home() -> HTMLResponse | RedirectResponse:
        if run_id is not None:
            return RedirectResponse(f"/runs/{run_id}")
        return runs()

    @app.get("/runs")
    def runs() -> HTMLResponse:
        return _page("runs.html.j2", root=str(root), runs=list_runs(root))

    @app.get("/runs/{run}")
    def run_page(run: str) -> HTMLResponse:
        data = opened(run)
        if data is None:
            return _missing(f"no run {run!r} under {root}")
        with data:
            a = data.analysis
            facts = data.facts()
            items = data.items()
            sizes = {c: sum(1 for i in items if i.cell == c) for c in data.cells()}
            return _page(
                "run.html.j2",
                run=data,
                a=a,
                banners=banners(facts, a) if facts else [],
                run_status=status_text(facts) if facts else data.manifest.status,
                program=program_line(data.manifest),
                stages=data.stages(),
                counts=data.counts(),
                sizes=sizes,
                levels={i.cell: i.levels for i in items},
            )

    @app.get("/runs/{run}/cells/{cell}")
    def cell_page(
        run: str,
        cell: str,
        request: Request,
        outcome: str = "",
        agreement: str = "",
        flag: str = "",
    ) -> HTMLResponse:
        data = opened(run)
        if data is None:
            return _missing(f"no run {run!r} under {root}")
        with data:
            primary = data.analysis.primary if data.analysis else _primary(data)
            rows = cell_rows(data, cell, primary)
            if not rows:
                return _missing(f"no cell {cell!r} in run {run!r}")
            f = Filters(outcome, agreement, flag)
            outcomes = data.analysis.outcomes if data.analysis else _outcomes(data)
            return _page(
                "cell.html.j2",
                run=data,
                cell=cell,
                stats=data.analysis.cell(cell) if data.analysis else None,
                primary=primary,
                outcomes=outcomes,
                rows=[r for r in rows if keep(r, f)],
                total=len(rows),
                f=f,
                flags=flag_choices(rows),
            )

    @app.get("/runs/{run}/items/{item_id}")
    def item_page(run: str, item_id: str) -> HTMLResponse:
        data = opened(run)
        if data is None:
            return _missing(f"no run {run!r} under {root}")
        with data:
            item = data.item(item_id)
            if item is None:
                return _missing(f"no item {item_id!r} in run {run!r}")
            outcomes = data.analysis.outcomes if data.analysis else _outcomes(data)
            return _page("item.html.j2", run=data, v=item_view(data, item), outcomes=outcomes)

    return app


def _outcomes(data: RunData) -> list[str]:
    return data.protocol.outcomes if data.protocol is not None else []


def _primary(data: RunData) -> str:
    return data.protocol.analysis.primary if data.protocol is not None else ""
