"""research report: rebuild analysis.json and report.md from a run's records."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from orchestrator.cli.run import RunsDir
from orchestrator.cli.ui import console


def report_cmd(
    run: Annotated[str, typer.Argument(help="Run id (or path to a run directory).")],
    runs_dir: RunsDir = None,
) -> None:
    """Recompute the analysis and rewrite report.md from records.sqlite alone."""
    from memory import write_atomic
    from orchestrator.analysis import analyze_records
    from orchestrator.context import as_run
    from orchestrator.report import write_report
    from orchestrator.rundir import RunDir, runs_root

    with RunDir.open(runs_root(runs_dir), run) as rd:
        m = rd.manifest
        protocol = as_run(rd.loaded.protocol, offline=m.offline, local_model=m.local_model)
        analysis = analyze_records(protocol, rd.records)
        write_atomic(rd.path("artifacts", "analysis.json"), json.dumps(analysis, indent=2) + "\n")
        path = write_report(rd, protocol, analysis)
        rd.log.append("report", "orchestrator", "report", "Report rebuilt from records.")
        rd.history.commit("report rebuilt")
    console.print(f"wrote {path}")
