"""research status: all runs as a table, or one run's SUMMARY.md."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markdown import Markdown
from rich.table import Table

from orchestrator.cli.run import RunsDir
from orchestrator.cli.ui import console
from orchestrator.errors import UserError


def status_cmd(
    run: Annotated[str | None, typer.Argument(help="A run id; omit to list all runs.")] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Show all runs, or one run's SUMMARY.md."""
    from orchestrator.rundir import read_manifest, runs_root

    root = runs_root(runs_dir)
    if run is not None:
        summary = root / run / "SUMMARY.md"
        if not summary.exists():
            raise UserError(f"no run {run!r} under {root}")
        console.print(Markdown(summary.read_text(encoding="utf-8")))
        return
    runs = (
        sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if root.exists()
        else []
    )
    table = Table(title=f"runs in {root}")
    for col in ("run", "protocol", "size", "status", "created", "updated"):
        table.add_column(col)
    for path in runs:
        m = read_manifest(path)
        if m is None:
            continue
        size = m.size + (" offline" if m.offline else "")
        table.add_row(m.run_id, m.protocol_id, size, m.status, m.created, m.updated)
    console.print(table if table.row_count else f"no runs in {root}")
