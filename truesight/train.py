"""Train a linear probe (logistic regression on mean residual-stream activations) for the worker.

Run::

    python -m truesight.train protocols/data/instructed_pairs.jsonl --model smollm2 \
        [--layer L] [--name N] [--cache-dir DIR] [--probes-dir D] [--control CONTROL.jsonl] \
        [--device auto] [--c 1.0]

Fits on the dataset's train split, reports ROC AUC on its test split and the score threshold at
1% false positives on a control set (the test split's negatives, or every text of --control),
then saves the probe to the probes folder, where `python -m truesight --probes-dir D` serves it as
`linear` and `tokens`. A dataset that cannot be used exits 2 with one line saying why.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from truesight.paths import DEFAULT_CACHE_DIR, probes_dir
from truesight.probes import dataset, linear
from truesight.probes.dataset import DatasetError, Example

if TYPE_CHECKING:  # torch loads only once the data has been checked
    from truesight.model import LoadedModel
    from truesight.probes.batch import ProbeStats


@dataclass(frozen=True)
class TrainReport:
    """A trained probe and where it was saved."""

    probe: linear.LinearProbe
    folder: Path
    seconds: float


def mean_activations(
    loaded: LoadedModel, examples: list[Example], layer: int, stats: ProbeStats | None = None
) -> np.ndarray:
    """(n, d) mean residual stream of each example's text at `layer`, its context conditioned on."""
    from truesight.probes.activations import ActRow, residuals
    from truesight.probes.batch import ProbeStats
    from truesight.probes.inputs import ProbeInput, encode

    rows = []
    for e in examples:
        enc = encode(loaded.tokenizer, ProbeInput(e.text, e.context))
        if len(enc.ids) > loaded.context_length:
            raise DatasetError(f"example {e.id}: {len(enc.ids)} tokens > {loaded.context_length}")
        rows.append(ActRow(enc.ids, len(enc.prefix)))
    acts = residuals(loaded, rows, layer, stats or ProbeStats())
    return np.stack([a.mean.numpy() for a in acts]).astype(np.float64)


def train(
    loaded: LoadedModel,
    data: dataset.Dataset,
    *,
    layer: int,
    name: str,
    control: dataset.Dataset | None = None,
    c: float = 1.0,
) -> linear.LinearProbe:
    """Fit on data's train split, evaluate on its test split, threshold on the control set."""
    from truesight.probes.cache import weights_fingerprint

    dataset.check_two_classes(data)
    train_set, test_set = data.split("train"), data.split("test")
    x_train = mean_activations(loaded, train_set, layer)
    y_train = np.array([e.label for e in train_set])
    x_test = mean_activations(loaded, test_set, layer)
    y_test = np.array([e.label for e in test_set])
    weights = linear.fit(x_train, y_train, c=c)
    test_scores = weights.score(x_test)
    if control is None:
        control_scores = test_scores[y_test == 0]
    else:
        control_scores = weights.score(mean_activations(loaded, control.examples, layer))
    threshold = linear.threshold_at_fpr(control_scores, 0.01)
    meta = linear.ProbeMeta(
        name=name,
        model=linear.ModelRef(name=loaded.name, fingerprint=weights_fingerprint(loaded)),
        layer=layer,
        data_sha256=data.sha256,
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        n_train=len(train_set),
        n_test=len(test_set),
        heldout_auroc=linear.auroc(test_scores, y_test),
        threshold_1pct_fpr=threshold,
        tpr_at_threshold=float(np.mean(test_scores[y_test == 1] > threshold)),
        n_control=len(control_scores),
        positive_label=data.positive,
        negative_label=data.negative,
        variant=data.variant,
        control_sha256=control.sha256 if control is not None else None,
        c=c,
        bow_auroc=linear.bow_auroc(
            [e.text for e in train_set], y_train, [e.text for e in test_set], y_test
        ),
    )
    return linear.LinearProbe(meta, weights)


def ensure(
    loaded: LoadedModel,
    root: Path,
    data: dataset.Dataset,
    *,
    name: str,
    layer: int | float | None = None,
    control: dataset.Dataset | None = None,
    c: float = 1.0,
) -> tuple[linear.LinearProbe, bool]:
    """The probe `name` under root, trained first unless an identical one is there.

    Identical: same model weights, dataset bytes, variant, layer, C and control set. Returns the
    probe and whether it was trained now. Raises DatasetError for unusable data or layers.
    """
    from truesight.probes.activations import resolve_layer
    from truesight.probes.cache import weights_fingerprint

    if not re.match(linear.NAME_PATTERN, name):
        raise DatasetError(f"probe name {name!r} must match {linear.NAME_PATTERN}")
    dataset.check_two_classes(data)
    try:
        layer = resolve_layer(loaded, layer)
    except ValueError as e:
        raise DatasetError(f"layer: {e}") from e
    try:
        have = linear.load(root, name, weights_fingerprint(loaded))
    except linear.ProbeError:
        have = None
    if have is not None:
        m, control_sha = have.meta, control.sha256 if control is not None else None
        wanted = (data.sha256, data.variant, layer, c, control_sha)
        if (m.data_sha256, m.variant, m.layer, m.c, m.control_sha256) == wanted:
            return have, False
    probe = train(loaded, data, layer=layer, name=name, control=control, c=c)
    linear.save(probe, root)
    return linear.load(root, name), True


def layer_arg(text: str) -> int | float:
    """--layer 22 is layer 22; --layer 0.75 is three quarters up (`resolve_layer` checks both)."""
    try:
        return int(text)
    except ValueError:
        return float(text)  # argparse reports a ValueError as an invalid value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m truesight.train", description=__doc__.split("\n")[0]
    )
    p.add_argument("dataset", type=Path, help="JSONL in the format of protocols/data/")
    p.add_argument("--model", default="smollm2", help="smollm2, a local directory or a hub id")
    p.add_argument(
        "--layer",
        type=layer_arg,
        default=None,
        help="residual layer: a number, or a share of the depth between 0 and 1 (default: middle)",
    )
    p.add_argument("--name", default=None, help="probe name (default: <dataset>-L<layer>)")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        help="the worker's cache root (default ~/.cache/research)",
    )
    p.add_argument("--probes-dir", type=Path, default=None, help="default CACHE_DIR/probes")
    p.add_argument(
        "--control", type=Path, default=None, help="JSONL of negatives for the threshold"
    )
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, ...")
    p.add_argument("--c", type=float, default=1.0, help="inverse L2 strength of the regression")
    p.add_argument(
        "--variant",
        choices=dataset.VARIANTS,
        default="as_written",
        help="same_statement: the original instructed-pairs recipe (both lines of a pair read "
        "meta.true_statement after their own instruction)",
    )
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> TrainReport:
    """Load the data (fails fast, before torch), the model, then train and save."""
    start = time.perf_counter()
    data = dataset.load(args.dataset, variant=args.variant)
    dataset.check_two_classes(data)
    control = dataset.load(args.control, control=True) if args.control else None
    if args.name is not None and not re.match(linear.NAME_PATTERN, args.name):
        raise DatasetError(f"--name {args.name!r} must match {linear.NAME_PATTERN}")

    from truesight.model import load_model
    from truesight.probes.activations import resolve_layer

    loaded = load_model(args.model, device=args.device, cache_dir=args.cache_dir)
    try:
        layer = resolve_layer(loaded, args.layer)
    except ValueError as e:
        raise DatasetError(f"--layer: {e}") from e
    name = args.name or f"{args.dataset.stem}-L{layer}"
    probe = train(loaded, data, layer=layer, name=name, control=control, c=args.c)
    folder = linear.save(probe, args.probes_dir or probes_dir(args.cache_dir))
    return TrainReport(probe, folder, time.perf_counter() - start)


def main(argv: Sequence[str] | None = None) -> int:
    """Train and save; print a summary table. Returns the exit code."""
    args = parse_args(argv)
    try:
        report = run(args)
    except DatasetError as e:
        sys.stderr.write(f"truesight.train: {e}\n")
        return 2
    from rich.console import Console
    from rich.table import Table

    m = report.probe.meta
    title = f"probe {m.name} ({m.model.name}, {m.variant}) -> {report.folder}"
    table = Table(title=title)
    sizes = ("train", "test", "layer")
    scores = ("AUROC", "BoW AUROC", "thr@1%FPR", "TPR@thr")
    for col in (*sizes, *scores, "control", "seconds"):
        table.add_column(col, justify="right")
    table.add_row(
        str(m.n_train),
        str(m.n_test),
        str(m.layer),
        f"{m.heldout_auroc:.3f}",
        f"{m.bow_auroc:.3f}" if m.bow_auroc is not None else "-",
        f"{m.threshold_1pct_fpr:.3f}",
        f"{m.tpr_at_threshold:.3f}",
        str(m.n_control),
        f"{report.seconds:.1f}",
    )
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
