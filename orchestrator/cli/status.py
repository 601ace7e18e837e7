"""research status: all runs as a table, or one run's SUMMARY.md and what it is doing now.

    research status
    research status deu-20260712-102030
    research status runs/deu-20260712-102030

Listing reads manifests and lock files only (no records, no LLM client): it stays quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markdown import Markdown
from rich.table import Table

from orchestrator.cli.run import RunsDir
from orchestrator.cli.ui import console
from orchestrator.errors import UserError

if TYPE_CHECKING:
    from orchestrator.lockfile import Owner
    from orchestrator.manifest import Manifest

SHORT = {"awaiting_approval": "waiting"}
"""Status words as the table shows them (the manifest's words otherwise)."""


def status_cmd(
    run: Annotated[
        str | None,
        typer.Argument(help="A run id or a run directory's path; omit to list all runs."),
    ] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Show all runs, or one run's SUMMARY.md and, while a process runs it, how far it is."""
    from orchestrator.lockfile import owner
    from orchestrator.manifest import program_line, read_manifest, runs_root

    root = runs_root(runs_dir)
    if run is not None:
        path = Path(run) if Path(run).is_dir() else root / run
        summary = path / "SUMMARY.md"
        if not summary.exists():
            raise UserError(f"no run {run!r} under {root}")
        text = summary.read_text(encoding="utf-8")
        m = read_manifest(path)
        joined = program_line(m) if m is not None else None
        if joined is not None:
            console.print(joined, highlight=False, soft_wrap=True)
        live = owner(path)
        if live is not None:
            console.print(f"[bold green]{_running(live)}[/]", highlight=False)
            text = _next_step(text, _while_running(path.name, live))
        elif m is not None and m.status == "running":
            console.print(f"[yellow]{_gone(path.name)}[/]", highlight=False)
        console.print(Markdown(text))
        return
    runs = (
        sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if root.exists()
        else []
    )
    # no borders: at 80 columns every character goes to run ids, statuses and times
    table = Table(title=f"runs in {root}", box=None, pad_edge=False, header_style="bold")
    table.add_column("run", overflow="fold", min_width=19)
    table.add_column("protocol", overflow="fold")
    for col in ("status", "created", "updated"):
        table.add_column(col, no_wrap=True)
    for path in runs:
        m = read_manifest(path)
        if m is None:
            continue
        size = m.size + (" offline" if m.offline else "")
        table.add_row(
            m.run_id,
            f"{m.protocol_id}, {size}",
            _status_word(m, owner(path)),
            _short_time(m.created),
            _short_time(m.updated),
        )
    console.print(table if table.row_count else f"no runs in {root}")


def _status_word(m: Manifest, live: Owner | None) -> str:
    if live is not None:
        return "running"
    if m.status == "running":  # said so, but no process holds the run: it was killed
        return "stopped"
    return SHORT.get(m.status, m.status)


def _short_time(stamp: str) -> str:
    """2026-07-12T10:20:31Z → 07-12 10:20 (UTC, as the run's files write it)."""
    return f"{stamp[5:10]} {stamp[11:16]}" if len(stamp) >= 16 else stamp


def _running(live: Owner) -> str:
    who = f"process {live.pid}" if live.pid else "another process"
    counts = ", ".join(f"{s.stage} {s.done}/{s.total}" for s in live.stages)
    return f"running ({who})" + (f": {counts}" if counts else "")


def _while_running(run_id: str, live: Owner) -> str:
    who = f"process {live.pid}" if live.pid else "another process"
    return (
        f"Running ({who}): wait for it to finish, or look at it: `research view {run_id}`. "
        "`approve` and `resume` refuse while it runs."
    )


def _gone(run_id: str) -> str:
    return (
        f"not running: the process that ran {run_id} is gone (killed?); "
        f"`research resume {run_id}` continues it"
    )


def _next_step(summary: str, text: str) -> str:
    """SUMMARY.md with its "Next step" section saying `text` (it was written before the
    process now running the run started, or between its stages)."""
    head, sep, _ = summary.partition("\n## Next step\n")
    return f"{head}{sep}\n{text}\n" if sep else summary
