"""Rebuild analysis.json and the report from records alone (`research report`, amendments)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.analysis import analyze_records, compute_agreement, save_agreement, save_analysis
from orchestrator.context import as_run
from orchestrator.report import write_report
from orchestrator.rundir import RunDir
from orchestrator.summary import refresh_summary


def rebuild_report(run: RunDir, reason: str = "rebuilt from records") -> Path:
    """Recompute the statistics from records.sqlite under the protocol as it stands (amended or
    not) and rewrite analysis.json, plots, report.md, report.html and SUMMARY.md (which reads
    analysis.json). Makes no API calls: the qualitative section is the one stored in
    artifacts/qualitative.json."""
    m = run.manifest
    protocol = as_run(run.loaded.protocol, offline=m.offline, local_model=m.local_model)
    if "evaluate" in run.records.stages():
        agreement = compute_agreement(protocol, run.records)
        save_agreement(run.path("artifacts", "agreement.json"), agreement)
    folder = run.path("artifacts", "probes")
    analysis = analyze_records(protocol, run.records, probe_artifacts=folder)
    save_analysis(run.path("artifacts", "analysis.json"), analysis)
    path = write_report(run, protocol, analysis)
    run.log.append("report", "orchestrator", "report", f"Report rebuilt: {reason}.")
    refresh_summary(run)
    run.history.commit(f"report rebuilt: {reason}")
    return path
