"""research compare: two runs' main results side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from orchestrator.cli.run import RunsDir
from orchestrator.cli.ui import console


def compare_cmd(
    run_a: Annotated[str, typer.Argument(help="First run id (or path to a run directory).")],
    run_b: Annotated[str, typer.Argument(help="Second run id (or path).")],
    out: Annotated[
        Path | None, typer.Option(help="Also write the comparison as Markdown to this file.")
    ] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Put two runs' main results side by side (cells, contrasts, interactions).

    Each side is the run's own analysis.json: the primary outcome per cell with its interval,
    each contrast on the outcomes it is named for, with each run's p in a column that says how
    it was adjusted (within that run's own family of tests), and the models' interaction terms.
    """
    from memory import write_atomic
    from orchestrator.compare import META, compare, load_side, to_markdown
    from orchestrator.rundir import RunDir, runs_root

    root = runs_root(runs_dir)
    with RunDir.open(root, run_a) as a:
        side_a = load_side(a)
    with RunDir.open(root, run_b) as b:
        side_b = load_side(b)
    c = compare(side_a, side_b)
    for warning in c.warnings:
        console.print(f"[bold yellow]warning[/]: {warning}", highlight=False)
    ra, rb = (r["run"] for r in c.runs)
    meta = Table(show_header=True, header_style="bold")
    for col in ("", ra, rb):
        meta.add_column(col)
    for key in META:
        meta.add_row(key, c.runs[0][key], c.runs[1][key])
    console.print(meta)
    for table in c.tables:
        if not table.rows:
            continue
        t = Table(title=f"{table.title}: {table.what}", title_justify="left", header_style="bold")
        for col in table.columns:
            t.add_column(col)
        for row in table.rows:
            t.add_row(*row)
        if table.footnote:
            t.caption, t.caption_justify = table.footnote, "left"
        console.print(t)
    for note in c.notes:
        console.print(f"[yellow]note[/]: {note}")
    if out is not None:
        write_atomic(out, to_markdown(c))
        console.print(f"wrote {out}")
