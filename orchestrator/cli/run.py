"""research run / resume / approve."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.cli.bars import Bars
from orchestrator.cli.program import ProgramsDir
from orchestrator.cli.ui import console, err, interactive
from orchestrator.errors import RunInterrupted

if TYPE_CHECKING:
    from orchestrator.runner import Outcome

WAITING = 3
"""Exit code of a run that stopped at a checkpoint and waits for a decision (0 is complete)."""


RunsDir = Annotated[
    Path | None,
    typer.Option(
        "--runs-dir",
        envvar="RESEARCH_RUNS_DIR",
        help="Where run directories live [default: ./runs].",
        show_default=False,
    ),
]
Yes = Annotated[
    bool,
    typer.Option(
        "--yes",
        "-y",
        help="Approve every checkpoint, unless a flag blocks it (an evaluator's data_quality "
        "flag, more unscored items than evaluation.max_unscored, a broken constraint).",
    ),
]
AcceptFlags = Annotated[
    bool,
    typer.Option(
        "--accept-flags",
        help="With --yes, approve past open blocking flags too (each is logged as accepted).",
    ),
]


def _report(outcome: Outcome) -> int:
    """Say how the run stands and what to do next; return the exit code."""
    if outcome.status == "awaiting_approval":
        if outcome.pending:
            console.print(
                f"[red]{outcome.pending}[/]: --yes never approves past them. Resume when the "
                f"API answers again: research resume {outcome.run_id} --yes"
            )
        if outcome.blocked_by:
            flags = "\n".join(f"  - {b}" for b in outcome.blocked_by)
            console.print(
                f"[red]--yes did not approve[/]: open flags need a person:\n{flags}\n"
                f"Read them (research status {outcome.run_id}), then approve, or resume with --yes "
                "--accept-flags."
            )
        console.print(
            f"[yellow]paused[/] at the [bold]{outcome.waiting_at}[/] checkpoint of "
            f"{outcome.run_id}. To continue:\n"
            f"  research approve {outcome.run_id} [--reject] [--note TEXT]\n"
            f"  research resume {outcome.run_id}"
        )
        return WAITING
    if outcome.status == "complete":
        console.print(f"[green]complete[/]: {outcome.run_dir / 'report.md'}")
        return 0
    console.print(f"[red]{outcome.status}[/]: see {outcome.run_dir / 'SUMMARY.md'}")
    return 1


def _interrupted(e: RunInterrupted) -> typer.Exit:
    err.print(
        "[yellow]interrupted[/]: everything recorded so far is kept; continue with "
        f"`research resume {e.run_id}`"
    )
    return typer.Exit(130)


def run_cmd(
    protocol: Annotated[Path, typer.Argument(help="The protocol YAML file.")],
    run_id: Annotated[str | None, typer.Option(help="Name of the run directory.")] = None,
    yes: Yes = False,
    accept_flags: AcceptFlags = False,
    pilot: Annotated[bool, typer.Option(help="Pilot size (design.pilot_n_per_cell).")] = False,
    offline: Annotated[
        bool,
        typer.Option(help="Use the local worker's model for subjects and judge; no API key."),
    ] = False,
    runs_dir: RunsDir = None,
    program: Annotated[
        str | None,
        typer.Option(help="Join this research programme: its PROGRAM.md lists the run."),
    ] = None,
    programs_dir: ProgramsDir = None,
) -> None:
    """Start a run: design, checkpoint, collect, screen, evaluate, checkpoint, analyze, report.

    Without a terminal and without --yes, the run stops at the first checkpoint and prints how
    to approve and resume it. Ctrl-C stops it; `research resume` continues where it was.

    Exit code: 0 complete; 3 waiting at a checkpoint for a decision; 1 rejected or failed; 2 a
    mistake in the command or protocol; 4 the API kept failing; 130 interrupted.
    """
    code = start_run(
        protocol,
        runs_dir=runs_dir,
        run_id=run_id,
        pilot=pilot,
        offline=offline,
        yes=yes,
        accept_flags=accept_flags,
        program=program,
        programs_dir=programs_dir,
    )
    raise typer.Exit(code)


def start_run(
    protocol: Path,
    *,
    runs_dir: Path | None,
    run_id: str | None = None,
    pilot: bool,
    offline: bool,
    yes: bool,
    accept_flags: bool = False,
    program: str | None,
    programs_dir: Path | None,
) -> int:
    """Start a run with the terminal's progress bars and approver, and say how it stands;
    return the exit code (`research run`'s, and `research next --run`'s)."""
    from orchestrator import runner

    with Bars() as bars:
        try:
            outcome = runner.start(
                protocol,
                runs_dir=runs_dir,
                run_id=run_id,
                pilot=pilot,
                offline=offline,
                yes=yes,
                accept_flags=accept_flags,
                approver=bars.approver if interactive() else None,
                progress=bars,
                program_name=program,
                programs_dir=programs_dir,
            )
        except RunInterrupted as e:
            raise _interrupted(e) from e
    return _report(outcome)


def resume_cmd(
    run: Annotated[str, typer.Argument(help="Run id (or path to a run directory).")],
    yes: Yes = False,
    accept_flags: AcceptFlags = False,
    runs_dir: RunsDir = None,
) -> None:
    """Continue a run from its files: after a checkpoint decision, a Ctrl-C or a crash.

    Exit code: 0 complete; 3 waiting at a checkpoint for a decision; 1 rejected or failed; 2 a
    mistake in the command or protocol; 4 the API kept failing; 130 interrupted.
    """
    from orchestrator import runner

    with Bars() as bars:
        try:
            outcome = runner.resume(
                run,
                runs_dir=runs_dir,
                yes=yes,
                accept_flags=accept_flags,
                approver=bars.approver if interactive() else None,
                progress=bars,
            )
        except RunInterrupted as e:
            raise _interrupted(e) from e
    raise typer.Exit(_report(outcome))


def approve_cmd(
    run: Annotated[str, typer.Argument(help="Run id (or path to a run directory).")],
    reject: Annotated[bool, typer.Option(help="Reject instead: the run stops here.")] = False,
    note: Annotated[str, typer.Option(help="Reason or remark, kept in LOG.md.")] = "",
    by: Annotated[str | None, typer.Option(help="Who decides [default: $USER].")] = None,
    leave_pending: Annotated[
        bool,
        typer.Option(
            help="Approve the evaluate checkpoint although items are pending (the judge API "
            "kept failing): they stay unjudged, missing data with their reason. Without it, "
            "`research resume RUN` judges them first."
        ),
    ] = False,
    runs_dir: RunsDir = None,
) -> None:
    """Decide the checkpoint a run is waiting at; then `research resume RUN` continues it."""
    from orchestrator import runner

    row = runner.approve(
        run, runs_dir=runs_dir, reject=reject, note=note, by=by, leave_pending=leave_pending
    )
    verb = "rejected" if row.decision == "reject" else "approved"
    console.print(f"{row.checkpoint} checkpoint {verb} by {row.by}.")
    if row.decision == "approve":
        console.print(f"Continue with: research resume {run}")
