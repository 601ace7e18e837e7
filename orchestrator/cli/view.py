"""research view: browse runs in a local web page, from a cell's rate down to the quoted sentence.

research view                 # every run under ./runs
research view RUN --port 8080 # open at RUN's page
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.run import RunsDir
from orchestrator.cli.ui import console
from orchestrator.errors import UserError


def _has_display() -> bool:
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def view_cmd(
    run: Annotated[
        str | None, typer.Argument(help="A run id (or run directory) to open at; omit for all.")
    ] = None,
    runs_dir: RunsDir = None,
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 0,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    open_browser: Annotated[
        bool | None,
        typer.Option(
            "--open/--no-open",
            help="Open the page in a web browser [default: open when there is a display].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve a read-only view of the runs: results tables, each cell's items, each item's prompt,
    response, verdicts with their quoted evidence, flags and probe readouts.

    Safe beside a run in progress (it takes no lock and writes nothing). Runs until Ctrl-C.
    """
    try:
        from orchestrator.view import create_app
        from orchestrator.view.serve import listen, serve
    except ImportError as e:
        raise UserError(
            f"research view needs FastAPI and uvicorn ({e.name} is missing): "
            "pip install 'research[view]'"
        ) from e
    from orchestrator.rundir import read_manifest, runs_root

    root = runs_root(runs_dir)
    if run is not None and Path(run).is_dir() and (Path(run) / "manifest.json").exists():
        root, run = Path(run).resolve().parent, Path(run).resolve().name
    if run is not None and read_manifest(root / run) is None:
        raise UserError(f"no run {run!r} under {root} (see `research status`)")
    try:
        sock = listen(host, port)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/" + (f"runs/{run}" if run else "")
    console.print(f"research view of {root}: {url}  (Ctrl-C to stop)", soft_wrap=True)
    if open_browser if open_browser is not None else _has_display():
        import webbrowser

        webbrowser.open(url)
    serve(create_app(root, run), sock)
