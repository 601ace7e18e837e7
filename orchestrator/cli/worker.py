"""research worker: start the local model worker (Messages API on 127.0.0.1)."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.settings import DEFAULT_LOCAL_MODEL, Settings


class Batching(StrEnum):
    CONTINUOUS = "continuous"
    STATIC = "static"


def worker_cmd(
    model: Annotated[
        str, typer.Option(help="'smollm2' (offline default), a local path or a HF model id.")
    ] = DEFAULT_LOCAL_MODEL,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    host: Annotated[str, typer.Option(help="Interface; beyond loopback needs --token.")] = (
        "127.0.0.1"
    ),
    token: Annotated[str | None, typer.Option(help="Required bearer token/x-api-key.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps.")] = "auto",
    prefix_cache_mb: Annotated[
        float,
        typer.Option(help="Memory (MB) for the KV of prompts marked with cache_control; 0: off."),
    ] = 4096.0,
    batching: Annotated[
        Batching,
        typer.Option(
            help="continuous: requests join the running batch between decode steps and each "
            "reply returns when its row ends; static: one generate per batch, rows wait for the "
            "longest."
        ),
    ] = Batching.CONTINUOUS,
    cache: Annotated[
        Path | None,
        typer.Option(
            help="SQLite file of probe results [default: RESEARCH_CACHE_DIR/probe-cache.sqlite]."
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Compute every probe result afresh; keep none.")
    ] = False,
    probes_dir: Annotated[
        Path | None,
        typer.Option(
            help="Trained probes for `linear` and `tokens` [default: RESEARCH_CACHE_DIR/probes]."
        ),
    ] = None,
) -> None:
    """Serve a local causal LM over an Anthropic-compatible /v1/messages (and /health).

    Runs in the foreground until Ctrl-C. The worker is its own process (package `truesight`), so
    it replaces this one. Its model and probe cache is RESEARCH_CACHE_DIR.
    """
    cache_dir = Settings.from_env().cache_dir
    args = [sys.executable, "-m", "truesight", "--model", model, "--device", device]
    args += ["--host", host, "--port", str(port), "--cache-dir", str(cache_dir)]
    args += ["--prefix-cache-mb", str(prefix_cache_mb), "--batching", batching.value]
    if token:
        args += ["--token", token]
    if cache is not None:
        args += ["--cache", str(cache)]
    if no_cache:
        args += ["--no-cache"]
    if probes_dir is not None:
        args += ["--probes-dir", str(probes_dir)]
    os.execv(sys.executable, args)
