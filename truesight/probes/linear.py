"""Trained linear probes: logistic regression on mean residual-stream activations.

A probe is a directory `<probes dir>/<name>/` holding `weights.npz` (coef, intercept, scaler mean
and scale; no pickle) and `probe.json` (`ProbeMeta`), written in that order, each by temp file and
rename, so a `probe.json` that exists describes weights that exist (its `weights_sha256` is checked
on load). Scores are computed with numpy from the saved arrays, so serving needs no scikit-learn;
`fit` (training only) imports it.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
META_FILE, WEIGHTS_FILE = "probe.json", "weights.npz"


class ProbeError(ValueError):
    """A probe that cannot be used as asked: unknown name, other model, damaged files."""


class ModelRef(BaseModel):
    """The model a probe was trained on."""

    name: str = Field(description="The model's name as the worker reports it.")
    fingerprint: str = Field(description="truesight.probes.cache.weights_fingerprint.")


class RandomInit(BaseModel):
    """A probe trained on a random-weight copy of a model: the same architecture and config,
    weights re-initialised from `seed` (see truesight.validity)."""

    seed: int = Field(description="torch.manual_seed before the weights were initialised.")
    of_model: ModelRef = Field(description="The model whose config was copied.")


class ProbeMeta(BaseModel):
    """probe.json: what a probe was trained on and how well it did."""

    name: str
    model: ModelRef
    layer: int = Field(description="Residual-stream layer (0 = embeddings), as hidden_states[L].")
    data_sha256: str = Field(description="sha256 of the training dataset file.")
    trained_at: str = Field(description="UTC time, ISO 8601.")
    n_train: int
    n_test: int
    heldout_auroc: float = Field(description="ROC AUC of the decision function on the test split.")
    threshold_1pct_fpr: float = Field(
        description="Decision-function threshold that at most 1% of the control set exceeds."
    )
    tpr_at_threshold: float = Field(description="Share of test positives above the threshold.")
    n_control: int = Field(description="Texts in the control set the threshold comes from.")
    positive_label: str = Field(description="What label 1 (score > 0) means.")
    negative_label: str
    weights_sha256: str = Field(default="", description="sha256 of weights.npz.")
    variant: str = Field(default="as_written", description="How the dataset was read.")
    control_sha256: str | None = Field(
        default=None, description="sha256 of the control set, if not the test negatives."
    )
    c: float = Field(default=1.0, description="Inverse L2 strength of the regression.")
    bow_auroc: float | None = Field(
        default=None,
        description="Held-out AUROC of a bag-of-words baseline on the same texts: how much of "
        "the label the words alone give away.",
    )
    random_init: RandomInit | None = Field(
        default=None, description="Set when the model was a random-weight copy (a control)."
    )


@dataclass(frozen=True)
class Weights:
    """StandardScaler + LogisticRegression as arrays: score = ((x - mean) / scale) . coef + b."""

    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray

    def score(self, x: np.ndarray) -> np.ndarray:
        """Decision function (log-odds of the positive label) of rows of x, or of one vector."""
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) @ self.coef + (
            self.intercept
        )


def probability(score: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(score, dtype=np.float64)))


@dataclass(frozen=True)
class LinearProbe:
    meta: ProbeMeta
    weights: Weights


def fit(x: np.ndarray, y: np.ndarray, *, c: float = 1.0, seed: int = 0) -> Weights:
    """Fit StandardScaler + LogisticRegression(C=c) on rows x with 0/1 labels y."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(
        StandardScaler(), LogisticRegression(C=c, max_iter=5000, random_state=seed)
    )
    pipe.fit(np.asarray(x, dtype=np.float64), np.asarray(y))
    scaler, logreg = pipe[0], pipe[-1]
    return Weights(
        coef=logreg.coef_[0].astype(np.float64),
        intercept=float(logreg.intercept_[0]),
        mean=scaler.mean_.astype(np.float64),
        scale=scaler.scale_.astype(np.float64),
    )


def bow_auroc(
    train_texts: list[str], y_train: np.ndarray, test_texts: list[str], y_test: np.ndarray
) -> float:
    """Held-out AUROC of logistic regression on word and bigram counts: the no-model baseline."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(
        CountVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b|[^\w\s]"),
        LogisticRegression(max_iter=5000),
    )
    try:
        pipe.fit(train_texts, y_train)
    except ValueError:  # no words at all in the training texts
        return 0.5
    return auroc(pipe.decision_function(test_texts), y_test)


def auroc(scores: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores))


def threshold_at_fpr(control_scores: np.ndarray, fpr: float = 0.01) -> float:
    """The smallest control score that at most `fpr` of the control scores exceed."""
    ordered = np.sort(np.asarray(control_scores, dtype=np.float64))
    k = int(np.ceil(len(ordered) * (1 - fpr))) - 1
    return float(ordered[min(max(k, 0), len(ordered) - 1)])


def write_file(path: Path, data: bytes) -> None:
    """Write by temp file and rename: a reader sees the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The arrays as an .npz that `np.load` reads, the same bytes for the same arrays: np.savez
    stamps each member with the time, so two workers training the same probe would report two
    weights_sha256 (a run sharding over several workers compares them)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for key, array in arrays.items():
            member = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with z.open(member, "w") as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
    return buf.getvalue()


def save(probe: LinearProbe, root: Path) -> Path:
    """Write the probe to root/<name>/ (weights first, probe.json last) and return that folder."""
    if not re.match(NAME_PATTERN, probe.meta.name):
        raise ProbeError(f"probe name {probe.meta.name!r} must match {NAME_PATTERN}")
    folder = Path(root) / probe.meta.name
    folder.mkdir(parents=True, exist_ok=True)
    w = probe.weights
    arrays = {"coef": w.coef, "intercept": np.array([w.intercept]), "mean": w.mean}
    data = npz_bytes(arrays | {"scale": w.scale})
    weights_sha = hashlib.sha256(data).hexdigest()
    write_file(folder / WEIGHTS_FILE, data)
    meta = probe.meta.model_copy(update={"weights_sha256": weights_sha})
    write_file(folder / META_FILE, (meta.model_dump_json(indent=2) + "\n").encode())
    return folder


def read_meta(root: Path, name: str) -> ProbeMeta:
    path = Path(root) / name / META_FILE
    try:
        return ProbeMeta.model_validate_json(path.read_bytes())
    except (OSError, ValueError) as e:
        raise ProbeError(f"cannot read probe {name!r} at {path}: {e}") from e


def load(root: Path, name: str, fingerprint: str | None = None) -> LinearProbe:
    """The probe `name` under root; with `fingerprint`, refuse one trained on another model."""
    if not re.match(NAME_PATTERN, name) or not (Path(root) / name / META_FILE).is_file():
        raise ProbeError(
            f"no trained probe {name!r} in {root}; available: {', '.join(names(root)) or 'none'}"
        )
    meta = read_meta(root, name)
    check_model(meta, fingerprint)
    path = Path(root) / name / WEIGHTS_FILE
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.weights_sha256:
        raise ProbeError(f"probe {name!r}: {path} does not match the sha256 in {META_FILE}")
    with np.load(path, allow_pickle=False) as z:
        weights = Weights(z["coef"], float(z["intercept"][0]), z["mean"], z["scale"])
    return LinearProbe(meta, weights)


def check_model(meta: ProbeMeta, fingerprint: str | None) -> None:
    if fingerprint is not None and meta.model.fingerprint != fingerprint:
        raise ProbeError(
            f"probe {meta.name!r} was trained on another model ({meta.model.name}, weights "
            f"{meta.model.fingerprint[:12]}); this worker's weights are {fingerprint[:12]}. "
            f"Retrain it with python -m truesight.train --model <this model>"
        )


def names(root: Path) -> list[str]:
    """Names of the probes under root (folders with a probe.json), sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob(f"*/{META_FILE}"))


class ProbeStore:
    """Probes under one folder, read from disk when first asked for or changed since."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._loaded: dict[str, tuple[int, LinearProbe]] = {}

    def names(self) -> list[str]:
        return names(self.root)

    def metas(self) -> list[ProbeMeta]:
        out = []
        for name in self.names():
            try:
                out.append(read_meta(self.root, name))
            except ProbeError:
                continue  # a damaged probe is reported when asked for, not in the listing
        return out

    def get(self, name: str, fingerprint: str | None = None) -> LinearProbe:
        path = self.root / name / META_FILE
        stamp = path.stat().st_mtime_ns if re.match(NAME_PATTERN, name) and path.is_file() else -1
        cached = self._loaded.get(name)
        if cached is None or cached[0] != stamp:
            cached = (stamp, load(self.root, name))
            self._loaded[name] = cached
        check_model(cached[1].meta, fingerprint)
        return cached[1]
