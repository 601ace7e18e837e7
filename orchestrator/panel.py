"""What the human sees at a checkpoint (or before deciding an amendment), and what they answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from orchestrator.flags import FlagGroup, flag_groups
from orchestrator.pending import pending_text
from orchestrator.records import AmendmentRow, StageStatus
from orchestrator.rundir import RunDir
from orchestrator.summary import build_summary
from orchestrator.usage import usage_totals


@dataclass(frozen=True)
class Panel:
    """What the human sees at a checkpoint."""

    run_id: str
    checkpoint: str
    done: list[tuple[str, str, str]]
    flags: list[FlagGroup]
    usage: dict[str, float]
    forecast: str
    numbers: dict[str, str]
    detail: str = ""
    """Shown verbatim above the question, e.g. an amendment's diff."""
    pending: str | None = None
    """Items still waiting for a judge (`pending_text`): approving leaves them unjudged."""


@dataclass(frozen=True)
class CheckpointDecision:
    """A human's (or `--yes`'s) answer at a checkpoint or to a pending amendment."""

    decision: Literal["approve", "reject"]
    note: str = ""
    by: str = "human"


Approver = Callable[[Panel], CheckpointDecision | None]
"""Asks a human at a checkpoint; None means no decision now (no terminal, or abort)."""


def panel(run: RunDir, checkpoint: str, forecast: str) -> Panel:
    s = build_summary(run, checkpoint)
    return Panel(
        run_id=run.id,
        checkpoint=checkpoint,
        done=[(p.stage, p.status, p.counts) for p in s.stages if p.status != StageStatus.PENDING],
        flags=flag_groups(run),
        usage=usage_totals(run),
        forecast=forecast,
        numbers={k: v for k, v in s.numbers.items() if _shown(k, checkpoint)},
        pending=pending_text(run.records) if checkpoint == "evaluate" else None,
    )


def _shown(number: str, checkpoint: str) -> bool:
    """Agreement at every checkpoint; the hypotheses' decisions at the last one, to approve."""
    return number.startswith("agreement") or (
        checkpoint == "report" and number.startswith("hypothesis ")
    )


def amendment_panel(run: RunDir, row: AmendmentRow) -> Panel:
    """What the human sees before deciding an amendment to the pre-registered analysis."""
    base = panel(run, f"amendment-{row.n}", "")
    redo = (
        "analyze and report are rebuilt from records"
        if "analyze" in run.records.stages()
        else "the analyze stage will use the amended analysis"
    )
    return Panel(
        run_id=base.run_id,
        checkpoint=f"amendment {row.n} to the pre-registered analysis",
        done=base.done,
        flags=[],
        usage=base.usage,
        forecast=f"if approved, {redo}; no API calls. Proposed by {row.by}: {row.note}",
        numbers=base.numbers,
        detail=row.diff,
    )
