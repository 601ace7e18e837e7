"""research init: start a protocol of your own.

research init myexp                 # protocols/myexp.yaml from the commented 2 x 2 skeleton
research init myexp --from deu      # a copy of protocols/deu.yaml with its id set to myexp
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from orchestrator.cli.ui import console
from orchestrator.scaffold import create, shipped


def init_cmd(
    name: Annotated[str, typer.Argument(help="The new protocol's id; the file is NAME.yaml.")],
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help=f"Copy this shipped protocol ({', '.join(shipped())}) instead of the skeleton.",
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder to write NAME.yaml in.")] = Path("protocols"),
) -> None:
    """Write a new protocol file that validates as written, and say how to try it.

    Without --from it is a small 2 x 2 experiment whose comments explain each section; with
    --from, a copy of a shipped protocol (and of the data files its probes read). An existing
    file is never replaced.
    """
    made = create(name, out, source)
    path = escape(str(made.path))
    console.print(f"[green]wrote[/] {path}", highlight=False, soft_wrap=True)
    for data in made.data_files:
        console.print(
            f"  and {escape(str(data))} (data the protocol reads)", highlight=False, soft_wrap=True
        )
    console.print(
        f"next:\n  research validate {path} --pilot --show 2\n"
        f"  research run {path} --pilot --offline",
        highlight=False,
        soft_wrap=True,
    )
