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
    the contrasts with corrected p-values, and the models' interaction terms.
    """
    from memory import write_atomic
    from orchestrator.compare import compare, load_side, to_markdown
    from orchestrator.rundir import RunDir, runs_root

    root = runs_root(runs_dir)
    with RunDir.open(root, run_a) as a:
        side_a = load_side(a)
    with RunDir.open(root, run_b) as b:
        side_b = load_side(b)
    c = compare(side_a, side_b)
    ra, rb = (r["run"] for r in c["runs"])
    meta = Table(show_header=True, header_style="bold")
    for col in ("", ra, rb):
        meta.add_column(col)
    for key in ("protocol", "size", "status", "models", "items"):
        meta.add_row(key, c["runs"][0][key], c["runs"][1][key])
    console.print(meta)
    for title, rows in (
        (f"{c['primary']} by cell: rate [95% CI]", c["cells"]),
        ("contrasts: difference in points [95% CI], p", c["contrasts"]),
        ("interactions: log-odds [95% CI], p", c["models"]),
    ):
        if not rows:
            continue
        t = Table(title=title, title_justify="left", header_style="bold")
        for col in ("", ra, rb):
            t.add_column(col)
        for row in rows:
            t.add_row(*row)
        console.print(t)
    for note in c["notes"]:
        console.print(f"[yellow]note[/]: {note}")
    if out is not None:
        write_atomic(out, to_markdown(c))
        console.print(f"wrote {out}")
