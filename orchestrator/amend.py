"""Amendments: changing a run's pre-registered analysis, openly.

The protocol a run started with is frozen in its directory and hashed into manifest.json
(`preregistered_sha256`). Only its `analysis` section may change after that — outcomes,
contrasts, models, correction, forecast rates, the qualitative focus — and only through an
amendment: proposed with a reason, shown as a diff, approved or rejected by a person, logged in
LOG.md, and listed in the report. Design, materials, subjects and evaluation cannot be amended:
the data already collected answers to them.

An amendment is decided like a checkpoint: in the terminal where it was proposed, with `--yes`,
or later with `research approve RUN [--reject]`. A run does not resume while one is pending.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.protocol import load_protocol
from orchestrator.rebuild import rebuild_report
from orchestrator.records import AmendmentRow, AmendmentStatus
from orchestrator.rundir import RunDir
from orchestrator.summary import refresh_summary

YES_NOTE = "auto-approved with --yes when proposed, without a human review"
"""The note of an amendment approved by `research amend --yes` (decided by "--yes", as a
checkpoint approved with --yes is)."""

FROZEN = ("design", "materials", "subjects", "evaluation", "probes", "checkpoints")
"""Protocol sections an amendment may not touch (with id, title, question, hypotheses)."""


def pending(run: RunDir) -> AmendmentRow | None:
    return next((a for a in run.records.amendments() if a.status == AmendmentStatus.PENDING), None)


def propose(run: RunDir, protocol_path: Path, note: str, by: str) -> AmendmentRow:
    """Record a proposed amendment (pending until decided); raises UserError if it touches
    anything but `analysis`, changes nothing, or another amendment is still pending."""
    if run.manifest.status == "running":
        raise UserError(f"{run.id} is running; stop it (Ctrl-C) before amending its analysis")
    if (open_ := pending(run)) is not None:
        raise UserError(
            f"amendment {open_.n} of {run.id} is still pending: decide it first with "
            f"`research approve {run.id}` or `research approve {run.id} --reject`"
        )
    if not note.strip():
        raise UserError("an amendment needs a reason (--note): it goes into LOG.md and the report")
    new = load_protocol(protocol_path)  # file:line errors for a broken file, as validate gives
    old = run.loaded
    changed = [
        k
        for k in type(old.protocol).model_fields
        if k != "analysis" and getattr(old.protocol, k) != getattr(new.protocol, k)
    ]
    if changed:
        raise UserError(
            f"{protocol_path} changes {', '.join(changed)}; after a run starts only its "
            "`analysis` section may be amended (the data already collected answers to the rest). "
            "Start a new run for a new design."
        )
    if old.protocol.analysis == new.protocol.analysis:
        raise UserError(
            f"{protocol_path} does not change the analysis of {run.id}: nothing to amend"
        )
    old_text = run.path("protocol.yaml").read_text()
    new_text = Path(protocol_path).read_text()
    diff = "".join(
        difflib.unified_diff(
            old_text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            "protocol.yaml (as run)",
            f"{protocol_path} (amended)",
        )
    )
    row = run.records.propose_amendment(by, note, old.sha256, new.sha256, diff, new_text)
    text = (
        f"Amendment {row.n} to the pre-registered analysis proposed by {by}: {note}\n\n"
        f"```diff\n{diff}```"
    )
    run.log.append("analyze", _actor(by), "amendment_proposed", text)
    refresh_summary(run)
    run.history.commit(f"amendment {row.n} proposed by {by}")
    return row


def decide(run: RunDir, row: AmendmentRow, approve: bool, by: str, note: str = "") -> AmendmentRow:
    """Approve (freeze the amended protocol) or reject a pending amendment. An approved one on a
    run that has been analysed already rebuilds analysis.json and the report."""
    if row.status != AmendmentStatus.PENDING:
        raise UserError(f"amendment {row.n} was already {row.status}")
    if approve:
        if run.path("protocol.yaml").read_text() != _current(run, row):
            raise UserError(f"protocol.yaml of {run.id} changed since amendment {row.n} was made")
        run.replace_protocol(row.text)
    status = AmendmentStatus.APPROVED if approve else AmendmentStatus.REJECTED
    decided = run.records.decide_amendment(row.n, status, by, note)
    run.records.record_decision(f"amendment-{row.n}", "approve" if approve else "reject", by, note)
    verb = "approved" if approve else "rejected"
    text = f"Amendment {row.n} {verb} by {by}." + (f" Note: {note}" if note else "")
    if approve:
        m = run.manifest
        text += (
            f" protocol.yaml now has sha256 {m.protocol_sha256[:12]} (pre-registered: "
            f"{(m.preregistered_sha256 or '?')[:12]})."
        )
    run.log.append("analyze", _actor(by), f"amendment_{verb}", text)
    if approve and "analyze" in run.records.stages():
        rebuild_report(run, reason=f"amendment {row.n} approved")
    refresh_summary(run)
    run.history.commit(f"amendment {row.n} {verb} by {by}")
    return decided


def _current(run: RunDir, row: AmendmentRow) -> str:
    """The protocol text the amendment was proposed against, if it is still the frozen one."""
    text = run.path("protocol.yaml").read_text()
    return text if run.loaded.sha256 == row.old_sha256 else ""


def _actor(by: str) -> str:
    return by.replace(" ", "_") or "human"
