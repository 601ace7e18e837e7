"""What a trained probe reads: the same recipe on a random-weight copy of the model, and the
probe carried to an out-of-distribution (transfer) set.

A held-out AUROC alone proves little. On instructed pairs attention carries the instruction
into the statement's residuals in any network of the model's shape, learned or not; and the
words of a dataset can give its label away (the bag-of-words baseline in probe.json). So, for a
trained probe:

- **random-weight control**: the same recipe (data, variant, layer, C, threshold set) trained on
  a copy of the model whose weights are re-initialised from its config after
  `torch.manual_seed(seed)`. Once per model, dataset and recipe; saved beside the probe as
  `<probes dir>/<name>/random-<seed>/` (a probe folder, so its weights are checked on load).
- **transfer**: a set in the format of protocols/data/ (every line read, whatever its split)
  scored by the probe, by the random-weight probe and by the bag of words fitted on the train
  split; and the share of the set's negatives (and positives) above the probe's 1%-FPR
  threshold, which was set on other data. Saved as `<name>/transfer-<sha256[:16]>.json`, valid
  while both probes' weights are the ones it names.

Asking again is answered from these files; the random-weight copy is built only when something
is missing (on CPU, then moved to the model's device; freed after).
"""

from __future__ import annotations

import copy
import dataclasses
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from truesight.model import LoadedModel
from truesight.probes import dataset, linear
from truesight.train import mean_activations, train


class RandomWeights(BaseModel):
    """The random-weight control of a probe, on the probe's own test split."""

    seed: int = Field(description="Seed of the re-initialised weights.")
    model_fingerprint: str = Field(description="weights_fingerprint of the random-weight copy.")
    heldout_auroc: float = Field(description="Held-out AUROC of the recipe on that copy.")
    weights_sha256: str = Field(description="sha256 of the control probe's weights.npz.")


class Transfer(BaseModel):
    """A probe on a set it was not trained on, beside the same baselines."""

    source: str = Field(description="The set's file name, as the request gave it.")
    sha256: str = Field(description="sha256 of the set's bytes.")
    positive_label: str = Field(description="What label 1 means in the set's header.")
    n_pos: int
    n_neg: int
    auroc: float = Field(description="The probe's AUROC on the set.")
    bow_auroc: float = Field(description="Bag of words fitted on the train split, on the set.")
    random_auroc: float | None = Field(description="The random-weight control probe on the set.")
    threshold: float = Field(description="The probe's 1%-FPR threshold (from its control set).")
    fpr_at_threshold: float = Field(description="Share of the set's negatives above it.")
    tpr_at_threshold: float = Field(description="Share of the set's positives above it.")
    probe_weights_sha256: str = Field(description="The probe these figures are of.")
    random_weights_sha256: str | None = Field(description="The control probe they are of.")


class Validity(BaseModel):
    """What POST /v1/trained-probes returns under `validity`."""

    random_weights: RandomWeights | None
    transfer: Transfer | None
    computed: list[str] = Field(
        description="What was computed for this request (`random_weights`, `transfer`); "
        "empty when everything came from the probe's folder."
    )


def random_copy(loaded: LoadedModel, seed: int) -> LoadedModel:
    """The model's architecture and config with freshly initialised weights (deterministic in
    `seed`); the global RNG is left as it was."""
    import torch
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(loaded.model.config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(
            config, dtype=loaded.dtype, attn_implementation="sdpa"
        )
    model.to(loaded.device)
    model.eval()
    name = f"{loaded.name} (random weights, seed {seed})"
    return dataclasses.replace(loaded, model=model, name=name)


class _LazyCopy:
    """The random-weight copy, built on first use only."""

    def __init__(self, loaded: LoadedModel, seed: int):
        self.loaded, self.seed = loaded, seed
        self.copy: LoadedModel | None = None

    def get(self) -> LoadedModel:
        if self.copy is None:
            self.copy = random_copy(self.loaded, self.seed)
        return self.copy


@contextmanager
def _random_model(loaded: LoadedModel, seed: int) -> Iterator[_LazyCopy]:
    lazy = _LazyCopy(loaded, seed)
    try:
        yield lazy
    finally:
        if lazy.copy is not None:
            device = lazy.copy.device
            lazy.copy = None
            gc.collect()
            if device.type == "cuda":
                import torch

                torch.cuda.empty_cache()


def _cached_random(root: Path, probe: linear.LinearProbe, seed: int) -> linear.LinearProbe | None:
    """The saved control of `probe` for `seed`, if it was made from the same model and recipe."""
    folder, name = root / probe.meta.name, f"random-{seed}"
    try:
        have = linear.load(folder, name)
    except linear.ProbeError:
        return None
    m, p = have.meta, probe.meta
    recipe = ("data_sha256", "variant", "layer", "c", "control_sha256")
    same = all(getattr(m, k) == getattr(p, k) for k in recipe)
    init = m.random_init
    if same and init is not None and init.seed == seed and init.of_model == p.model:
        return have
    return None


def _cached_transfer(
    path: Path, probe: linear.LinearProbe, rnd: linear.LinearProbe | None
) -> Transfer | None:
    try:
        have = Transfer.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return None
    rnd_sha = rnd.meta.weights_sha256 if rnd is not None else None
    if (have.probe_weights_sha256, have.random_weights_sha256) == (
        probe.meta.weights_sha256,
        rnd_sha,
    ):
        return have
    return None


def transfer_figures(
    loaded: LoadedModel,
    probe: linear.LinearProbe,
    data: dataset.Dataset,
    ood: dataset.Dataset,
    control: tuple[LoadedModel, linear.LinearProbe] | None,
) -> Transfer:
    """The probe, the bag of words and (with `control`, its model and probe) the random-weight
    probe on every example of `ood`; the probe's threshold on its negatives and positives."""
    y = np.array([e.label for e in ood.examples])
    layer = probe.meta.layer
    scores = probe.weights.score(mean_activations(loaded, ood.examples, layer))
    random_auroc = None
    if control is not None:
        rnd_model, rnd_probe = control
        random_auroc = linear.auroc(
            rnd_probe.weights.score(mean_activations(rnd_model, ood.examples, layer)), y
        )
    train_set = data.split("train")
    bow = linear.bow_auroc(
        [e.text for e in train_set],
        np.array([e.label for e in train_set]),
        [e.text for e in ood.examples],
        y,
    )
    threshold = probe.meta.threshold_1pct_fpr
    return Transfer(
        source=str(ood.path),
        sha256=ood.sha256,
        positive_label=ood.positive,
        n_pos=int(np.sum(y == 1)),
        n_neg=int(np.sum(y == 0)),
        auroc=linear.auroc(scores, y),
        bow_auroc=bow,
        random_auroc=random_auroc,
        threshold=threshold,
        fpr_at_threshold=float(np.mean(scores[y == 0] > threshold)),
        tpr_at_threshold=float(np.mean(scores[y == 1] > threshold)),
        probe_weights_sha256=probe.meta.weights_sha256,
        random_weights_sha256=control[1].meta.weights_sha256 if control is not None else None,
    )


def check_transfer_set(ood: dataset.Dataset) -> None:
    """Both labels among its examples, or a DatasetError."""
    labels = {e.label for e in ood.examples}
    if labels != {0, 1}:
        have = ", ".join(str(x) for x in sorted(labels))
        raise dataset.DatasetError(f"{ood.path}: a transfer set needs labels 0 and 1 (has {have})")


def assess(
    loaded: LoadedModel,
    root: Path,
    probe: linear.LinearProbe,
    data: dataset.Dataset,
    *,
    control: dataset.Dataset | None = None,
    transfer: dataset.Dataset | None = None,
    seed: int | None = None,
) -> Validity:
    """The random-weight control (with `seed`) and the transfer figures (with `transfer`) of a
    probe saved under root and trained from `data` and `control`; from its folder where there."""
    if transfer is not None:
        check_transfer_set(transfer)
    computed: list[str] = []
    folder = root / probe.meta.name
    with _random_model(loaded, seed or 0) as lazy:
        rnd = _cached_random(root, probe, seed) if seed is not None else None
        if seed is not None and rnd is None:
            recipe = {"layer": probe.meta.layer, "control": control, "c": probe.meta.c}
            made = train(lazy.get(), data, name=f"random-{seed}", **recipe)
            init = linear.RandomInit(seed=seed, of_model=probe.meta.model)
            meta = made.meta.model_copy(update={"random_init": init})
            linear.save(linear.LinearProbe(meta, made.weights), folder)
            rnd = linear.load(folder, f"random-{seed}")
            computed.append("random_weights")
        figures = None
        if transfer is not None:
            path = folder / f"transfer-{transfer.sha256[:16]}.json"
            figures = _cached_transfer(path, probe, rnd)
            if figures is None:
                pair = (lazy.get(), rnd) if rnd is not None else None
                figures = transfer_figures(loaded, probe, data, transfer, pair)
                linear.write_file(path, (figures.model_dump_json(indent=2) + "\n").encode())
                computed.append("transfer")
    random_weights = None
    if rnd is not None:
        random_weights = RandomWeights(
            seed=rnd.meta.random_init.seed,
            model_fingerprint=rnd.meta.model.fingerprint,
            heldout_auroc=rnd.meta.heldout_auroc,
            weights_sha256=rnd.meta.weights_sha256,
        )
    return Validity(random_weights=random_weights, transfer=figures, computed=computed)
