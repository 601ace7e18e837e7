"""How the truesight readouts of the probe stage look per cell, and how well each readout
separates the items judged positive from the negatives (AUROC with a Mann–Whitney p)."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from orchestrator.analysis.rates import is_scored
from orchestrator.analysis.result import Association, ProbeStat, ProbeSummary
from orchestrator.records import Item, ProbeRow, ProbeSource, Records, Verdict


def probe_metrics(probe: str, result: dict[str, Any]) -> dict[str, float]:
    """The scalar readouts of one probe result, named `probe.metric`.

    Trained probes are stored as `linear:<name>` (and `tokens:<name>`); their metric is
    `linear.<name>`, the score (log-odds of the probe's positive label), and `tokens.<name>.max`.
    """
    probe, _, trained = probe.partition(":")
    if probe == "linear" and trained:
        values = {trained: result["score"]} if "score" in result else {}
    elif probe == "tokens" and trained:
        scores = [t["score"] for t in result.get("tokens", [])]
        values = {f"{trained}.max": max(scores)} if scores else {}
    elif probe == "surprisal":
        values = {k: result[k] for k in ("mean_nll", "p90", "max") if k in result}
    elif probe == "author":
        values = dict(result.get("attributes", {}))
    elif probe == "followup":  # questions are long: q1, q2, ... (see the labels)
        values = {f"q{k + 1}": v for k, v in enumerate(result.get("questions", {}).values())}
    else:
        values = {}
    return {f"{probe}.{k}": float(v) for k, v in values.items()}


def summarise_probes(records: Records, items: list[Item]) -> ProbeSummary:
    """Mean, sd and n of every probe metric per cell (readouts from the probe stage only), the
    cells in the order of `items`."""
    cell_of = {i.id: i.cell for i in items}
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    models: set[str] = set()
    rows = records.probe_results(source=ProbeSource.STAGE)
    for row in rows:
        if row.item_id in cell_of and row.result is not None:
            models.add(row.model)
            for metric, v in probe_metrics(row.probe, row.result).items():
                values[cell_of[row.item_id]][metric].append(v)
    metrics = sorted({m for per_cell in values.values() for m in per_cell})
    order = dict.fromkeys(i.cell for i in items)  # the items' order: design order
    cells = {
        cell: {m: _stat(v) for m, v in values[cell].items()} for cell in order if cell in values
    }
    groups: dict[str, list[str]] = defaultdict(list)
    for m in metrics:
        groups[m.split(".")[0]].append(m)
    return ProbeSummary(
        models=sorted(models),
        metrics=metrics,
        groups=dict(groups),
        labels=_labels(records.probe_results("followup", ProbeSource.STAGE), rows),
        cells=cells,
    )


def _stat(v: list[float]) -> ProbeStat:
    import numpy as np

    sd = float(np.std(v, ddof=1)) if len(v) > 1 else None
    return ProbeStat(mean=float(np.mean(v)), sd=sd, n=len(v))


def _labels(followups: list[ProbeRow], rows: list[ProbeRow]) -> dict[str, str]:
    """What the terse metric names stand for: the follow-up questions, the trained probes."""
    labels = {}
    for row in followups:
        if row.result is not None:
            for k, question in enumerate(row.result.get("questions", {})):
                labels[f"followup.q{k + 1}"] = question
            break
    for row in rows:
        base, _, trained = row.probe.partition(":")
        if base == "linear" and trained and row.result is not None:
            labels.setdefault(
                f"linear.{trained}",
                f"trained probe {row.result.get('probe')} at layer {row.result.get('layer')}: "
                "log-odds of its positive label",
            )
    return labels


def associate(
    records: Records, items: list[Item], verdicts: dict[str, Verdict], outcome: str
) -> list[Association]:
    """How well each probe metric separates scored items with `outcome` true from false.

    One value per item and metric (its latest readout). AUROC is the Mann–Whitney U of the
    positives over n_pos × n_neg: the chance that a random positive reads higher than a random
    negative (ties count half); 0.5 is no association.
    """
    labels = {}
    for item in items:
        v = verdicts.get(item.id)
        if is_scored(v) and v and v.fields and isinstance(v.fields.get(outcome), bool):
            labels[item.id] = v.fields[outcome]
    known = {i.id for i in items}
    values: dict[str, dict[str, float]] = defaultdict(dict)
    for row in records.probe_results(source=ProbeSource.STAGE):
        if row.item_id in known and row.result is not None:
            for metric, x in probe_metrics(row.probe, row.result).items():
                values[metric][row.item_id] = x
    out = []
    for metric in sorted(values):
        pairs = [(labels[i], x) for i, x in values[metric].items() if i in labels]
        pos = [x for y, x in pairs if y and math.isfinite(x)]
        neg = [x for y, x in pairs if not y and math.isfinite(x)]
        area, p = auroc(pos, neg)
        out.append(
            Association(
                metric=metric,
                outcome=outcome,
                n=len(pos) + len(neg),
                n_pos=len(pos),
                n_neg=len(neg),
                auroc=area,
                p=p,
                mean_pos=sum(pos) / len(pos) if pos else None,
                mean_neg=sum(neg) / len(neg) if neg else None,
            )
        )
    return out


def auroc(pos: list[float], neg: list[float]) -> tuple[float | None, float | None]:
    """(AUROC, two-sided Mann–Whitney p) of values in positives vs negatives; None if a group
    is empty."""
    if not pos or not neg:
        return None, None
    from scipy.stats import mannwhitneyu

    u, p = mannwhitneyu(pos, neg, alternative="two-sided")
    return float(u) / (len(pos) * len(neg)), float(p) if math.isfinite(p) else None
