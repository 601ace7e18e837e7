"""research program: a research programme across runs.

    research program deu --question "Does DEU raise how often models report planted text?"
    research program deu
    research program
    research run protocols/deu.yaml --pilot --program deu

A programme keeps `programs/NAME/PROGRAM.md` (its question, one line per run, open questions)
and LOG.md; a run joined with `--program` updates its line when it ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markdown import Markdown
from rich.table import Table

from orchestrator.cli.ui import console

if TYPE_CHECKING:
    from memory import Program

ProgramsDir = Annotated[
    Path | None,
    typer.Option(
        "--programs-dir",
        envvar="RESEARCH_PROGRAMS_DIR",
        help="Where programmes live [default: ./programs].",
        show_default=False,
    ),
]


def program_cmd(
    name: Annotated[
        str | None, typer.Argument(help="The programme's name; omit to list programmes.")
    ] = None,
    question: Annotated[
        str | None,
        typer.Option(help="The programme's question: creates the programme (needed to create)."),
    ] = None,
    ask: Annotated[str | None, typer.Option(help="Add an open question to the programme.")] = None,
    programs_dir: ProgramsDir = None,
) -> None:
    """Create a programme (with --question), show one (PROGRAM.md), or list them all."""
    from memory import list_programs
    from orchestrator.program import create_program, open_program, programs_root

    if name is None:
        _list(list_programs(programs_root(programs_dir)))
        return
    if question is not None:
        program = create_program(programs_dir, name, question)
        console.print(f"created {program.root / 'PROGRAM.md'}", soft_wrap=True)
        console.print(
            f"Join runs to it with: research run PROTOCOL --program {name}", soft_wrap=True
        )
    else:
        program = open_program(programs_dir, name)
    if ask is not None:
        program.add_open_question(ask)
    if question is None:
        console.print(Markdown((program.root / "PROGRAM.md").read_text(encoding="utf-8")))


def _list(programs: list[Program]) -> None:
    if not programs:
        console.print("no programmes yet: research program NAME --question TEXT")
        return
    table = Table(header_style="bold")
    for column in ("programme", "runs", "question"):
        table.add_column(column)
    for p in programs:
        table.add_row(p.name, str(len(p.runs)), p.question)
    console.print(table)
