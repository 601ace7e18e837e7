"""research design "QUESTION" [--from PROTOCOL] [--out FILE]: the designer drafts a protocol.

    research design "Does telling a model its tool results may be tampered with change how \
often it follows instructions found in them?" --from protocols/deu.yaml
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.prompt import Prompt
from rich.syntax import Syntax

from orchestrator.cli.run import RunsDir
from orchestrator.cli.ui import console, interactive
from orchestrator.errors import UserError

if TYPE_CHECKING:
    from orchestrator.design.flow import StageDecision, StageView


TERMINAL = "terminal"
"""Who a decision made at the terminal is recorded as (as `research run` records its own)."""


def design_cmd(
    question: Annotated[str, typer.Argument(help="The research question, in a sentence.")],
    example: Annotated[
        Path | None,
        typer.Option("--from", help="A protocol to follow in style and schema."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="The protocol file to write [default: protocols/<plan id>.yaml, or "
            "<plan id>-2.yaml, -3, ... when taken]."
        ),
    ] = None,
    offline: Annotated[
        bool, typer.Option(help="Draft with the local worker's model (started if none runs).")
    ] = False,
    form: Annotated[
        str | None,
        typer.Option(
            help="full: the model writes the protocol's sections under the protocol schema. "
            "compact: a small model writes bounded content only (2-level factors, one bool "
            "outcome) and research design writes the structure. [default: compact with "
            "--offline, else full]"
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Approve every stage (without human review).")
    ] = False,
    runs_dir: RunsDir = None,
) -> None:
    """Draft a protocol in four stages (plan, materials, comprehension, analysis), each checked
    by the protocol loader and shown at a checkpoint: approve, reject with a note, or edit.

    A design stopped at any point resumes when started again with the same question and --from.
    Exit code: 0 written; 1 the designer failed; 2 a mistake in the command.
    """
    # imported here: --help must not load the records stack
    from orchestrator.design.start import approve_all, start_design

    if not yes and not interactive():
        raise UserError("research design needs a terminal to ask at each stage, or --yes")
    path = start_design(
        question,
        example=example,
        out=out,
        runs_dir=runs_dir,
        offline=offline,
        form=form,
        approver=approve_all if yes else terminal_stage,
        yes=yes,
    )
    console.print(
        f"wrote [bold]{escape(str(path))}[/]; check it with: research validate {path}",
        soft_wrap=True,
    )


def terminal_stage(view: StageView) -> StageDecision:
    """Show a stage's draft and ask: approve, reject with a note, or edit in $EDITOR."""
    from orchestrator.design.flow import StageDecision

    parts = Syntax(view.text, "yaml", theme="ansi_dark", word_wrap=True)
    title = f"stage: {view.stage.name} — {view.stage.title}"
    if view.revision:
        title += f" (revision {view.revision})"
    console.print(Panel(parts, title=escape(title), expand=False))
    for error in view.errors:
        console.print(f"[red]{escape(error)}[/]")
    for lack in view.short:
        console.print(f"[yellow]short of the plan: {escape(lack)}[/]")
    for warning in view.warnings:
        console.print(f"[yellow]not fixed by the designer: {escape(warning)}[/]")
    if view.forecast:
        console.print(Panel(escape(view.forecast), title="forecast at full size", expand=False))
    choice = Prompt.ask(
        "approve (a), reject with a note (r), or edit in $EDITOR (e)",
        choices=["a", "r", "e"],
        default="a",
    )
    if choice == "a":
        return StageDecision("approve", Prompt.ask("note (optional)", default=""), by=TERMINAL)
    if choice == "r":
        note = ""
        while not note:
            note = Prompt.ask("what should change")
        return StageDecision("reject", note, by=TERMINAL)
    return StageDecision("edit", edited=_edit(view.text), by=TERMINAL)


def _edit(text: str) -> str:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        subprocess.run([*shlex.split(editor), f.name], check=False)
        return Path(f.name).read_text()
    finally:
        os.unlink(f.name)
