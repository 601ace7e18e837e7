"""Probe validity: what each trained probe reads, decided by a rule written before the data,
and which zero-shot readouts separate the labels of a transfer set at all.

The probe stage leaves one file per trained probe, artifacts/probes/<name>.json: the worker's
probe.json, plus `validity` (the random-weight control and the transfer figures, see
truesight.validity) and `transfer_readouts` (the zero-shot metrics on the transfer set). This
module turns those into typed results and decides the verdict:

    "reads more than words and more than the instruction" only when the transfer AUROC beats
    both the bag of words and the random-weight control, on the transfer set, by MARGIN.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from orchestrator.analysis.probes import auroc
from orchestrator.analysis.result import ProbeTransfer, ProbeValidity, ReadoutTransfer
from orchestrator.protocol.schema import Protocol

MARGIN = 0.05
"""By how much a transfer AUROC must beat each baseline for the positive verdict."""

READS_MORE = "reads more than words and more than the instruction"


def _transfer(figures: dict[str, Any], set_path: str) -> ProbeTransfer:
    n_neg = figures["n_neg"]
    return ProbeTransfer(
        set=set_path,
        n_pos=figures["n_pos"],
        n_neg=n_neg,
        auroc=figures["auroc"],
        bow_auroc=figures["bow_auroc"],
        random_auroc=figures.get("random_auroc"),
        threshold=figures["threshold"],
        false_positives=round(figures["fpr_at_threshold"] * n_neg),
        fpr=figures["fpr_at_threshold"],
        tpr=figures["tpr_at_threshold"],
    )


def decide(
    heldout: float, heldout_bow: float | None, t: ProbeTransfer | None, margin: float = MARGIN
) -> tuple[bool | None, bool | None, str]:
    """(beats the words, beats the random-weight control, the verdict in one line)."""
    if t is None:
        return None, None, "not tested out of distribution: a held-out AUROC alone proves nothing"
    beats_words = t.auroc > t.bow_auroc + margin
    beats_random = None if t.random_auroc is None else t.auroc > t.random_auroc + margin
    figures = f"transfer AUROC {t.auroc:.2f}, bag of words {t.bow_auroc:.2f}"
    if t.random_auroc is not None:
        figures += f", random-weight control {t.random_auroc:.2f}"
    if beats_words and beats_random:
        return True, True, f"{READS_MORE} ({figures}; margin {margin:.2f})"
    parts = []
    if t.auroc < 0.5 + margin:
        parts.append("does not transfer (chance or reversed out of distribution)")
    if not beats_words:
        words_in = heldout_bow is not None and heldout_bow >= heldout - margin
        parts.append(
            "reads the words (the bag of words matches it held-out)"
            if words_in
            else "reads no more than the words out of distribution"
        )
    if beats_random is False:
        parts.append(
            "no better than a random-weight model: reads what attention carries (the "
            "instruction, the wording), not intent"
        )
    elif beats_random is None:
        parts.append("no random-weight control to compare with")
    return beats_words, beats_random, f"{'; '.join(parts)} ({figures}; margin {margin:.2f})"


def probe_validity(name: str, dataset: str, record: dict[str, Any]) -> ProbeValidity:
    """One probe's typed validity from its artifacts/probes/<name>.json."""
    found = record.get("validity") or {}
    random = found.get("random_weights")
    figures = found.get("transfer")
    transfer = _transfer(figures, record.get("transfer_set") or "") if figures else None
    beats_words, beats_random, verdict = decide(
        record["heldout_auroc"], record.get("bow_auroc"), transfer
    )
    return ProbeValidity(
        name=name,
        positive=record["positive_label"],
        negative=record["negative_label"],
        model=record["model"]["name"],
        layer=record["layer"],
        dataset=dataset,
        heldout_auroc=record["heldout_auroc"],
        bow_auroc=record.get("bow_auroc"),
        random_auroc=random["heldout_auroc"] if random else None,
        random_seed=random["seed"] if random else None,
        n_threshold=record["n_control"],
        transfer=transfer,
        margin=MARGIN,
        beats_words=beats_words,
        beats_random=beats_random,
        reads_more=bool(beats_words and beats_random),
        verdict=verdict,
    )


def read_validity(
    protocol: Protocol, folder: Path
) -> tuple[list[ProbeValidity], list[ReadoutTransfer]] | None:
    """Every trained probe's validity and the zero-shot readouts on the transfer sets, in
    protocol order (each set's readouts once); None when the probe stage trained nothing."""
    spec = protocol.probes
    if spec is None or not spec.train:
        return None
    probes, readouts, sets = [], [], set()
    for name, t in spec.train.items():
        path = folder / f"{name}.json"
        if not path.exists():
            continue
        record = json.loads(path.read_text())
        probes.append(probe_validity(name, t.dataset, record))
        for r in record.get("transfer_readouts") or []:
            if (r["metric"], r["set"]) not in sets:
                sets.add((r["metric"], r["set"]))
                readouts.append(ReadoutTransfer.model_validate(r))
    return (probes, readouts) if probes else None


def readout_transfer(
    metric: str, set_path: str, labels: tuple[str, str], values: list[tuple[int, float]]
) -> ReadoutTransfer:
    """One zero-shot metric on a transfer set from (label, value) pairs; `labels` names the
    set's (positive, negative) labels."""
    pos = [x for y, x in values if y == 1 and math.isfinite(x)]
    neg = [x for y, x in values if y == 0 and math.isfinite(x)]
    area, p = auroc(pos, neg)
    if area is None or area == 0.5:
        direction = "none"
    else:
        direction = f"higher = {labels[0] if area > 0.5 else labels[1]}"
    return ReadoutTransfer(
        metric=metric,
        set=set_path,
        positive=labels[0],
        negative=labels[1],
        n_pos=len(pos),
        n_neg=len(neg),
        auroc=area,
        p=p,
        direction=direction,
    )
