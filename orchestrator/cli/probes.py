"""research probes train: fit a linear truesight probe on a contrast dataset.

research probes train protocols/data/instructed_pairs.jsonl --layer 0.75 --variant same_statement

The work happens in the worker's package (`python -m truesight.train`), its own process like
the worker, so this command only checks and hands over its arguments.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.protocol.base import probe_layer
from orchestrator.settings import DEFAULT_LOCAL_MODEL, Settings

app = typer.Typer(
    help="Truesight activation probes: train them for the worker.",
    no_args_is_help=True,
    rich_markup_mode=None,  # as the app's: click's plain help
)


class Variant(StrEnum):
    """How a dataset's lines are read: `probes.train.<name>.variant` in a protocol."""

    AS_WRITTEN = "as_written"
    SAME_STATEMENT = "same_statement"


def _layer(value: str) -> int | float:
    """--layer as a protocol gives it: the same rule and the same words when it is refused."""
    try:
        return probe_layer(value)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


@app.command("train")
def train_cmd(
    dataset: Annotated[Path, typer.Argument(help="JSONL contrast set (see protocols/data/).")],
    model: Annotated[
        str, typer.Option(help="smollm2, a local path or a HF model id.")
    ] = DEFAULT_LOCAL_MODEL,
    layer: Annotated[
        float | None,
        typer.Option(
            parser=_layer,
            metavar="<number>",
            help="Residual layer: a number, or a share of the model's depth between 0 and 1 "
            "(0.75: three quarters up), as in a protocol [default: the middle].",
        ),
    ] = None,
    variant: Annotated[
        Variant,
        typer.Option(
            help="same_statement: both lines of a pair read meta.true_statement after their "
            "own instruction (the original instructed-pairs recipe)."
        ),
    ] = Variant.AS_WRITTEN,
    name: Annotated[
        str | None, typer.Option(help="Probe name [default: the dataset's, with its layer].")
    ] = None,
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
    args += ["--cache-dir", str(Settings.from_env().cache_dir), "--variant", variant.value]
    optional = {"--layer": layer, "--name": name, "--probes-dir": probes_dir, "--control": control}
    for flag, value in optional.items():
        if value is not None:
            args += [flag, str(value)]
    os.execv(sys.executable, args)
