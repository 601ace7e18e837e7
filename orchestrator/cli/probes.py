"""research probes train: fit a linear truesight probe on a contrast dataset.

The work happens in the worker's package (`python -m truesight.train`), its own process like
the worker, so this command only hands over its arguments.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.settings import DEFAULT_LOCAL_MODEL, Settings

app = typer.Typer(
    help="Truesight activation probes: train them for the worker.", no_args_is_help=True
)


@app.command("train")
def train_cmd(
    dataset: Annotated[Path, typer.Argument(help="JSONL contrast set (see protocols/data/).")],
    model: Annotated[
        str, typer.Option(help="smollm2, a local path or a HF model id.")
    ] = DEFAULT_LOCAL_MODEL,
    layer: Annotated[int | None, typer.Option(help="Residual layer [default: the middle].")] = None,
    name: Annotated[str | None, typer.Option(help="Probe name [default: the dataset's].")] = None,
    probes_dir: Annotated[
        Path | None,
        typer.Option(help="Where the worker finds probes [default: RESEARCH_CACHE_DIR/probes]."),
    ] = None,
    control: Annotated[
        Path | None, typer.Option(help="Texts for the 1%-false-positive threshold.")
    ] = None,
) -> None:
    """Fit on the train split, report held-out AUROC and the 1%-FPR threshold, save the probe."""
    args = [sys.executable, "-m", "truesight.train", str(dataset), "--model", model]
    args += ["--cache-dir", str(Settings.from_env().cache_dir)]
    optional = {"--layer": layer, "--name": name, "--probes-dir": probes_dir, "--control": control}
    for flag, value in optional.items():
        if value is not None:
            args += [flag, str(value)]
    os.execv(sys.executable, args)
