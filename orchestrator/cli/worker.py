"""research worker: start the local model worker (Messages API on 127.0.0.1)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer


def worker_cmd(
    model: Annotated[
        str, typer.Option(help="'smollm2' (offline default), a local path or a HF model id.")
    ] = "smollm2",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    host: Annotated[str, typer.Option(help="Interface; beyond loopback needs --token.")] = (
        "127.0.0.1"
    ),
    token: Annotated[str | None, typer.Option(help="Required bearer token/x-api-key.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps.")] = "auto",
) -> None:
    """Serve a local causal LM over an Anthropic-compatible /v1/messages (and /health).

    Runs in the foreground until Ctrl-C. The worker is its own process (package `truesight`), so
    it replaces this one.
    """
    args = [sys.executable, "-m", "truesight", "--model", model, "--port", str(port),
            "--host", host, "--device", device]  # fmt: skip
    if token:
        args += ["--token", token]
    os.execv(sys.executable, args)
