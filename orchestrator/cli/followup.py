"""research next: an agent proposes follow-up experiments to a finished run; you pick one.

    research next deu-20260712-102030
    research next deu-20260712-102030 --offline
    research next deu-20260712-102030 --pick 2
    research next deu-20260712-102030 --pick 2 --run --pilot

Each proposal is the run's protocol with changes, checked with the protocol loader and forecast
at full size. The pick is written as protocols/<new-id>.yaml (never over a file) and logged in
the run's LOG.md and its programme's. Without a terminal, and without --pick or --yes, the
proposals go to artifacts/next.md and the command exits 3, waiting for the choice. With --run,
the picked protocol is run at once, in the run's programme (as `research run FILE --program
NAME` would; --offline and --yes apply to it too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown
from rich.prompt import Prompt

from orchestrator.cli.run import WAITING, RunsDir, start_run
from orchestrator.cli.ui import console, interactive


def next_cmd(
    run: Annotated[str, typer.Argument(help="Run id (or path to a run directory).")],
    offline: Annotated[
        bool, typer.Option(help="Ask the local worker's model instead; no API key.")
    ] = False,
    pick: Annotated[
        int | None, typer.Option(help="Take follow-up N (0: none) without asking.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Take the first follow-up.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Where the picked protocol is written [default: beside the run's]."),
    ] = None,
    by: Annotated[str | None, typer.Option(help="Who decides [default: $USER].")] = None,
    then_run: Annotated[
        bool,
        typer.Option(
            "--run",
            help="Run the picked protocol now, in this run's programme (with --yes: approving "
            "its checkpoints too).",
        ),
    ] = False,
    pilot: Annotated[bool, typer.Option(help="With --run: at pilot size.")] = False,
    runs_dir: RunsDir = None,
) -> None:
    """Propose 1–3 follow-up experiments to a finished run, and pick one (or none).

    Exit code: 0 a choice was made; 3 proposals written, waiting for `--pick N`; 1 no proposal
    validated; 2 a mistake in the command; 4 the API kept failing. With --run, the new run's
    (as `research run`'s).
    """
    from orchestrator import followups, program
    from orchestrator.rundir import RunDir, runs_root
    from orchestrator.runner import user_name

    with RunDir.open(runs_root(runs_dir), run) as r:
        proposed = followups.propose_next(r, offline=offline)
        console.print(Markdown(followups.as_markdown(proposed)))
        if not proposed.followups:
            raise typer.Exit(1)
        if pick is None and yes:
            pick = 1
        if pick is None and interactive():
            k = len(proposed.followups)
            choices = [str(n) for n in range(k + 1)]
            pick = int(Prompt.ask(f"pick a follow-up (1–{k}), or 0 for none", choices=choices))
        if pick is None:
            console.print(
                f"[yellow]waiting[/]: proposals in {r.path('artifacts', 'next.md')}. To choose:"
                f"\n  research next {r.id} --pick N   (0 for none)",
                soft_wrap=True,
            )
            raise typer.Exit(WAITING)
        where = out or _beside(r.manifest.protocol_source)
        written = followups.pick(r, proposed, pick, by or user_name(), where)
        joined = program.of_run(r)
    if written is None:
        console.print(
            "No follow-up picked; the choice is logged." + (" Nothing to run." if then_run else "")
        )
        return
    console.print(f"[green]written[/]: {written}", soft_wrap=True)
    name = joined.name if joined is not None else None
    join = f" --program {name}" if name else ""
    if not then_run:
        console.print(f"Run it with: research run {written}{join}", soft_wrap=True)
        return
    console.print(f"Running it: research run {written}{join}", soft_wrap=True)
    code = start_run(
        written,
        runs_dir=runs_dir,
        pilot=pilot,
        offline=offline,
        yes=yes,
        program=name,
        programs_dir=joined.root.parent if joined is not None else None,
    )
    raise typer.Exit(code)


def _beside(source: str) -> Path:
    parent = Path(source).parent
    return parent if parent.is_dir() else Path("protocols")
