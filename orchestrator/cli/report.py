"""research report: rebuild analysis.json and report.md from a run's records."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.run import RunsDir
from orchestrator.cli.ui import console


def report_cmd(
    run: Annotated[str, typer.Argument(help="Run id (or path to a run directory).")],
    runs_dir: RunsDir = None,
) -> None:
    """Recompute the analysis and rewrite report.md and report.html from records.sqlite alone.

    No API calls: the analyst's qualitative section is the one stored with the run.
    """
    from orchestrator.rebuild import rebuild_report
    from orchestrator.rundir import RunDir, runs_root

    with RunDir.open(runs_root(runs_dir), run) as rd:
        path = rebuild_report(rd, reason="`research report`")
    console.print(f"wrote {path} and {path.with_suffix('.html')}")
