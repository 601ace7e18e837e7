"""research next: an agent proposes follow-up experiments to a finished run; you pick one.

    research next deu-20260712-102030
    research next deu-20260712-102030 --offline
    research next deu-20260712-102030 --pick 2

Each proposal is the run's protocol with changes, checked with the protocol loader and forecast
at full size. The pick is written as protocols/<new-id>.yaml (never over a file) and logged in
the run's LOG.md and its programme's. Without a terminal, and without --pick or --yes, the
proposals go to artifacts/next.md and the command exits 3, waiting for the choice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown
from rich.prompt import Prompt

from orchestrator.cli.run import WAITING, RunsDir
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
    runs_dir: RunsDir = None,
) -> None:
    """Propose 1–3 follow-up experiments to a finished run, and pick one (or none).

    Exit code: 0 a choice was made; 3 proposals written, waiting for `--pick N`; 1 no proposal
    validated; 2 a mistake in the command; 4 the API kept failing.
    """
    from orchestrator import followups
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
    if written is None:
        console.print("No follow-up picked; the choice is logged.")
    else:
        console.print(
            f"[green]written[/]: {written}\nRun it with: research run {written}", soft_wrap=True
        )


def _beside(source: str) -> Path:
    parent = Path(source).parent
    return parent if parent.is_dir() else Path("protocols")
