"""Finishing a stage: its status and counts in records, LOG.md, SUMMARY.md, one git commit."""

from __future__ import annotations

from orchestrator.records import StageStatus
from orchestrator.rundir import RunDir
from orchestrator.summary import refresh_summary


def finish_stage(run: RunDir, stage: str, counts: dict[str, int | float], text: str) -> None:
    """Record a finished stage: records, LOG.md, SUMMARY.md, then one git commit."""
    run.records.set_stage(stage, StageStatus.DONE, counts)
    run.log.append(stage, "orchestrator", "stage_done", text)
    refresh_summary(run)
    counts_text = ", ".join(f"{k}={v}" for k, v in counts.items())
    run.history.commit(f"{stage}: done ({counts_text})")
