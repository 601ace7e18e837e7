"""research amend: propose a change to a run's pre-registered analysis, and decide it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.run import RunsDir
from orchestrator.cli.ui import console, interactive


def amend_cmd(
    run: Annotated[str, typer.Argument(help="Run id (or path to a run directory).")],
    protocol: Annotated[
        Path, typer.Argument(help="The protocol with its `analysis` section changed.")
    ],
    note: Annotated[str, typer.Option(help="Why the analysis changes (required; logged).")] = "",
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Approve it now, without asking.")
    ] = False,
    by: Annotated[str | None, typer.Option(help="Who proposes it [default: $USER].")] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Amend the analysis a run pre-registered: only the protocol's `analysis` section may change.

    Shows the diff and asks approve / reject in the terminal (or approves with --yes). Without a
    terminal the amendment waits: `research approve RUN [--reject]` decides it. An approved
    amendment freezes the new protocol.yaml in the run, is logged in LOG.md and listed in the
    report; a run that was already analysed gets its analysis and report rebuilt.
    """
    from orchestrator import amend
    from orchestrator.cli.ui import terminal_approver
    from orchestrator.panel import amendment_panel
    from orchestrator.records import AmendmentStatus
    from orchestrator.rundir import RunDir, runs_root
    from orchestrator.runner import user_name

    who = by or user_name()
    with RunDir.open(runs_root(runs_dir), run) as rd:
        row = amend.propose(rd, protocol, note, who)
        console.print(
            f"amendment {row.n} proposed ({row.diff.count(chr(10))} diff lines)", highlight=False
        )
        if yes:  # recorded as checkpoints record --yes: made by the flag, not by a person
            decided = amend.decide(rd, row, True, "--yes", amend.YES_NOTE)
        elif interactive():
            d = terminal_approver(amendment_panel(rd, row))
            if d is None:
                decided = row
            else:
                decided = amend.decide(rd, row, d.decision == "approve", who, d.note)
        else:
            decided = row
    if decided.status == AmendmentStatus.PENDING:
        console.print(
            f"[yellow]pending[/]: decide it with `research approve {rd.id} [--reject] "
            "[--note TEXT]`"
        )
    else:
        console.print(
            f"amendment {decided.n} {decided.status} by {decided.decided_by}", highlight=False
        )
