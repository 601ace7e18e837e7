"""Deciding a checkpoint the graph waits at: a decision recorded earlier, `--yes`, or a person at
the terminal — and, at the evaluate checkpoint, sending the stage back for items still pending
(the judge API kept failing) instead of deciding past them. What is decided is recorded in
records, LOG.md (with every open flag settled), SUMMARY.md and a git commit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from agents.loop import Retry
from orchestrator.flags import blocking_flags, blocking_kinds
from orchestrator.forecast import forecast
from orchestrator.panel import Approver, CheckpointDecision, panel
from orchestrator.pending import pending_text
from orchestrator.protocol.schema import Protocol
from orchestrator.records import DecisionRow
from orchestrator.rundir import RunDir
from orchestrator.settings import Settings
from orchestrator.summary import refresh_summary


@dataclass(frozen=True)
class Outcome:
    run_id: str
    run_dir: Path
    status: str
    waiting_at: str | None = None
    blocked_by: list[str] = field(default_factory=list)
    """Why --yes did not approve the checkpoint: the open flags that need a human."""
    pending: str | None = None
    """Items still waiting for a judge at the checkpoint (the judge API kept failing): --yes
    never approves past them; `research resume` judges them."""


def record_decision(run: RunDir, checkpoint: str, d: CheckpointDecision) -> DecisionRow:
    row = run.records.record_decision(checkpoint, d.decision, d.by, d.note)
    verb = "approved" if d.decision == "approve" else "rejected"
    note = f" Note: {d.note}" if d.note else ""
    actor = d.by.replace(" ", "_") or "human"
    run.log.append(
        checkpoint, actor, d.decision, f"Checkpoint `{checkpoint}` {verb} by {d.by}.{note}"
    )
    outcome = "accepted" if d.decision == "approve" else "run rejected"
    because = f": {d.note}" if d.note else ""
    resolution = f"{outcome} at the {checkpoint} checkpoint by {d.by}{because}"
    for flag in run.records.flags():
        if flag.resolution is None:  # every open flag is settled by the decision, in LOG.md
            run.records.resolve_flag(flag.id, resolution)
            what = f"{flag.kind} from {flag.raised_by}: {flag.text}"
            run.log.append(
                checkpoint, actor, "flag_resolved", f"Flag {flag.id} ({what}) — {resolution}."
            )
    refresh_summary(run)
    run.history.commit(f"{checkpoint}: {verb} by {d.by}")
    return row


PENDING_ROUNDS = 1
"""Times one process sends evaluate back for pending items by itself; each `research resume`
sends it back once more."""


def send_back(run: RunDir, checkpoint: str, settings: Settings) -> bool:
    """At the evaluate checkpoint with items pending and no decision yet: wait a while, say so,
    and send the stage back for them (True)."""
    if checkpoint != "evaluate" or run.records.decision(checkpoint) is not None:
        return False
    text = pending_text(run.records)
    if text is None:
        return False
    wait = Retry(settings.retry_passes, settings.retry_wait_s).after()
    run.log.append(
        "evaluate", "orchestrator", "retry", f"{text}: judging them again in {wait:g} s."
    )
    time.sleep(wait)
    return True


def at_checkpoint(
    run: RunDir,
    protocol: Protocol,
    waiting: str,
    yes: bool,
    approver: Approver | None,
    accept_flags: bool,
) -> Outcome | None:
    """Decide the checkpoint the graph waits at (unless decided earlier); an Outcome if the run
    stops here to wait for a human. Items pending after evaluate keep --yes from approving, with
    or without --accept-flags: they are an outage to wait out, not a judgement call."""
    if run.records.decision(waiting) is not None:
        return None
    pending = pending_text(run.records) if waiting == "evaluate" else None
    if pending is not None and yes:
        text = (
            f"--yes does not approve `{waiting}`: {pending}. `research resume {run.id}` "
            "judges them."
        )
        run.log.append(waiting, "orchestrator", "blocked", text)
    blocking = blocking_flags(run) if yes and not accept_flags else []
    if blocking:
        text = (
            f"--yes does not approve `{waiting}`: {len(blocking)} open blocking flag(s) "
            f"({', '.join(blocking_kinds(run))}) need a human (or --accept-flags)."
        )
        run.log.append(waiting, "orchestrator", "blocked", text)
    auto = yes and not blocking and pending is None
    d = ask(run, protocol, waiting, auto, approver, accept_flags)
    if d is None:
        run.set_status("awaiting_approval")
        refresh_summary(run, waiting)
        run.history.commit(f"{waiting}: awaiting approval")
        return Outcome(run.id, run.root, "awaiting_approval", waiting, blocking, pending)
    record_decision(run, waiting, d)
    return None


def ask(
    run: RunDir,
    protocol: Protocol,
    checkpoint: str,
    yes: bool,
    approver: Approver | None,
    accept_flags: bool = False,
) -> CheckpointDecision | None:
    if yes:
        open_flags = sum(1 for f in run.records.flags() if f.resolution is None)
        how = "--yes --accept-flags" if accept_flags and open_flags else "--yes"
        note = f"auto-approved with {how}" + (
            f" ({open_flags} open flags accepted)" if open_flags else ""
        )
        return CheckpointDecision("approve", note, "--yes")
    if approver is None:
        return None
    return approver(panel(run, checkpoint, forecast(protocol, run.records, checkpoint)))
