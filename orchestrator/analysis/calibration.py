"""The judges against a researcher's labels (`research label`) → `Calibration`.

Labelled items are a sample, stratified by cell and by the judges' verdict on the primary
outcome (so that rare positives get labelled), or whatever items a labels file names. Either
way each labelled item stands for its stratum: it is weighted by N_s / n_s, the stratum's
scored items over its labelled ones (post-stratification), so agreement, κ, sensitivity and
specificity estimate the judges' error over the whole run, not over a sample that
over-represents the judges' positives. With every item labelled, every weight is 1.

Sensitivity and specificity get a Wilson 95% interval at the Kish effective sample size
(Σw)² / Σw² of the items in their denominator; κ is Cohen's over the weighted table. Fields
compared: bool, enum, ordinal and int (exact agreement); free text and floats are not.
Sensitivity and specificity are pooled over cells: the judges are blind to the cell, so their
error is assumed not to depend on it, and each cell's rate of an outcome with labels is
corrected with them (misclassification.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from orchestrator.analysis.misclassification import rogan_gladen, wilson
from orchestrator.analysis.rates import is_scored
from orchestrator.analysis.result import (
    Calibration,
    Cell,
    Confusion,
    CorrectedRate,
    Estimate,
    FieldCalibration,
)
from orchestrator.protocol.schema import Protocol
from orchestrator.records import Item, Label, Verdict

COMPARED = ("bool", "enum", "ordinal", "int")
"""Verdict field types the judges are compared with the human on."""

Stratum = tuple[str, bool]
Pair = tuple[Any, Any, float]
"""(the judges' value, the human's, the item's weight)."""


def calibrate(
    protocol: Protocol,
    items: list[Item],
    verdicts: dict[str, Verdict],
    labels: list[Label],
    cells: list[Cell],
) -> Calibration | None:
    """The judges against the human labels on each compared field, and the outcomes' rates per
    cell corrected for the judges' error; None when nothing is labelled."""
    human: dict[str, dict[str, Any]] = defaultdict(dict)
    for x in labels:
        if not x.skipped:
            human[x.item_id][x.field] = x.value
    if not human:
        return None
    primary = protocol.analysis.primary
    stratum = {
        i.id: (i.cell, verdicts[i.id].fields.get(primary) is True)  # type: ignore[union-attr]
        for i in items
        if is_scored(verdicts.get(i.id))
    }
    size = Counter(stratum.values())
    fields = {}
    for name, spec in protocol.evaluation.verdict.items():
        if spec.type not in COMPARED:
            continue
        judged = [
            (i, verdicts[i].fields.get(name), human[i][name])  # type: ignore[union-attr]
            for i in sorted(human)
            if i in stratum and name in human[i]
        ]
        judged = [(i, j, h) for i, j, h in judged if j is not None]
        labelled = Counter(stratum[i] for i, _, _ in judged)
        pairs = [(j, h, size[stratum[i]] / labelled[stratum[i]]) for i, j, h in judged]
        fields[name] = _field(spec.type, pairs)
    corrected = [
        _corrected(c, o, fields[o])
        for o in protocol.outcomes
        if o in fields and fields[o].n
        for c in cells
    ]
    return Calibration(
        items=len(human),
        labels=sum(len(f) for f in human.values()),
        by=sorted({x.by for x in labels if not x.skipped}),
        strata=len(size),
        strata_labelled=len({stratum[i] for i in human if i in stratum}),
        fields=fields,
        corrected=corrected,
    )


def _field(kind: str, pairs: list[Pair]) -> FieldCalibration:
    total = sum(w for _, _, w in pairs)
    agree = sum(w for j, h, w in pairs if j == h) / total if pairs else None
    if kind != "bool" or not pairs:
        return FieldCalibration(
            type=kind,
            n=len(pairs),
            agree=agree,
            kappa=kappa(pairs),
            sensitivity=None,
            specificity=None,
            confusion=None,
        )
    count = Counter((j is True, h is True) for j, h, _ in pairs)
    return FieldCalibration(
        type=kind,
        n=len(pairs),
        agree=agree,
        kappa=kappa(pairs),
        sensitivity=share([(j is True, w) for j, h, w in pairs if h is True]),
        specificity=share([(j is False, w) for j, h, w in pairs if h is False]),
        confusion=Confusion(
            tp=count[(True, True)],
            fp=count[(True, False)],
            fn=count[(False, True)],
            tn=count[(False, False)],
        ),
    )


def share(hits: list[tuple[bool, float]]) -> Estimate:
    """The weighted share of hits, with its Wilson interval at the Kish effective n."""
    if not hits:
        return Estimate(value=None, lo=None, hi=None, n=0, n_eff=None)
    total = sum(w for _, w in hits)
    value = sum(w for hit, w in hits if hit) / total
    n_eff = total * total / sum(w * w for _, w in hits)
    lo, hi = wilson(value, n_eff)
    return Estimate(value=value, lo=lo, hi=hi, n=len(hits), n_eff=n_eff)


def kappa(pairs: list[Pair]) -> float | None:
    """Cohen's κ of the judges against the human over the weighted table; None when only one
    category occurs (chance agreement is then total)."""
    total = sum(w for _, _, w in pairs)
    if not pairs:
        return None
    judges: Counter[str] = Counter()
    humans: Counter[str] = Counter()
    for j, h, w in pairs:
        judges[str(j)] += w / total
        humans[str(h)] += w / total
    observed = sum(w for j, h, w in pairs if str(j) == str(h)) / total
    chance = sum(judges[c] * humans[c] for c in judges)
    if len(judges | humans) < 2 or chance >= 1:
        return None
    return (observed - chance) / (1 - chance)


def _corrected(cell: Cell, outcome: str, f: FieldCalibration) -> CorrectedRate:
    raw = cell.outcomes[outcome]
    assert f.sensitivity is not None and f.specificity is not None
    c = rogan_gladen(raw, f.sensitivity, f.specificity)
    key = {"cell": cell.cell, "subject": cell.subject, "levels": cell.levels}
    return CorrectedRate(**key, outcome=outcome, n=raw.n, raw=raw.rate, **c._asdict())
