"""Per-cell outcome rates with Wilson intervals, and the protocol's contrasts.

Unscored items are counted per cell and kept out of the denominator — they are missing data, not
negatives. Intervals come from statsmodels; Fisher's exact test from scipy.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from orchestrator.protocol.schema import Contrast, Protocol
from orchestrator.records import Item, Records, Verdict


def rate(k: int, n: int) -> dict[str, Any]:
    # imported here: statsmodels and scipy cost ~1.5 s of start-up that only this stage needs
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return {"n": 0, "k": 0, "rate": None, "lo": None, "hi": None}
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return {"n": n, "k": k, "rate": k / n, "lo": float(lo), "hi": float(hi)}


def primary_verdicts(verdicts: list[Verdict]) -> dict[str, Verdict]:
    """One verdict per item: a scored one if any evaluator scored it (first by evaluator name)."""
    out: dict[str, Verdict] = {}
    for v in sorted(verdicts, key=lambda v: (v.item_id, v.status != "scored", v.evaluator)):
        out.setdefault(v.item_id, v)
    return out


def analyze_records(protocol: Protocol, records: Records) -> dict[str, Any]:
    items = records.items()
    verdicts = primary_verdicts(records.verdicts())
    screen = records.screen()
    by_cell: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_cell[item.cell].append(item)
    enums = [n for n, f in protocol.evaluation.verdict.items() if f.type == "enum"]
    cells = []
    for key, cell_items in by_cell.items():
        scored = [verdicts[i.id] for i in cell_items if _scored(verdicts.get(i.id))]
        unscored = len(cell_items) - len(scored)
        outcomes = {}
        for o in protocol.outcomes:
            k = sum(1 for v in scored if v.fields and v.fields.get(o) is True)
            outcomes[o] = {**rate(k, len(scored)), "unscored": unscored}
        cells.append(
            {
                "cell": key,
                "subject": cell_items[0].subject,
                "levels": cell_items[0].levels,
                "items": len(cell_items),
                "outcomes": outcomes,
                "enums": {
                    e: dict(Counter(str(v.fields.get(e)) for v in scored if v.fields))
                    for e in enums
                },
                "screen": dict(Counter(f for i in cell_items for f in screen.get(i.id, []))),
            }
        )
    contrasts = [
        _contrast(c, subject.id, outcome, items, verdicts)
        for c in protocol.analysis.contrasts
        for subject in protocol.subjects
        for outcome in protocol.outcomes
    ]
    return {
        "probes": summarise_probes(records, items),
        "primary": protocol.analysis.primary,
        "outcomes": protocol.outcomes,
        "cells": cells,
        "contrasts": contrasts,
        "totals": {
            "items": len(items),
            "scored": sum(1 for i in items if _scored(verdicts.get(i.id))),
            "unscored": sum(1 for i in items if not _scored(verdicts.get(i.id))),
        },
    }


def _scored(v: Verdict | None) -> bool:
    return v is not None and v.status == "scored" and v.fields is not None


def _contrast(
    c: Contrast, subject: str, outcome: str, items: list[Item], verdicts: dict[str, Verdict]
) -> dict[str, Any]:
    def arm(level: str) -> tuple[int, int]:
        chosen = [
            verdicts[i.id]
            for i in items
            if i.subject == subject
            and i.levels.get(c.factor) == level
            and all(i.levels.get(f) == lv for f, lv in c.within.items())
            and _scored(verdicts.get(i.id))
        ]
        return sum(1 for v in chosen if v.fields and v.fields.get(outcome) is True), len(chosen)

    (kt, nt), (kc, nc) = arm(c.treatment), arm(c.control)
    out: dict[str, Any] = {
        "name": c.name,
        "subject": subject,
        "outcome": outcome,
        "treatment": {"level": c.treatment, **rate(kt, nt)},
        "control": {"level": c.control, **rate(kc, nc)},
        "diff": None,
        "lo": None,
        "hi": None,
        "fisher_p": None,
    }
    if nt and nc:
        from scipy.stats import fisher_exact
        from statsmodels.stats.proportion import confint_proportions_2indep

        lo, hi = confint_proportions_2indep(kt, nt, kc, nc, method="newcomb", compare="diff")
        _, p = fisher_exact([[kt, nt - kt], [kc, nc - kc]])
        out.update(diff=kt / nt - kc / nc, lo=float(lo), hi=float(hi), fisher_p=float(p))
    return out


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


def summarise_probes(records: Records, items: list[Item]) -> dict[str, Any]:
    """Mean, sd and n of every probe metric per cell (readouts from the probe stage only)."""
    import numpy as np

    cell_of = {i.id: i.cell for i in items}
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    models: set[str] = set()
    for row in records.probe_results():
        if row.item_id in cell_of and row.result is not None:
            models.add(row.model)
            for metric, v in probe_metrics(row.probe, row.result).items():
                values[cell_of[row.item_id]][metric].append(v)
    metrics = sorted({m for per_cell in values.values() for m in per_cell})
    labels = {}
    for row in records.probe_results("followup"):
        if row.result is not None:
            for k, question in enumerate(row.result.get("questions", {})):
                labels[f"followup.q{k + 1}"] = question
            break
    for row in records.probe_results():
        base, _, trained = row.probe.partition(":")
        if base == "linear" and trained and row.result is not None:
            labels.setdefault(
                f"linear.{trained}",
                f"trained probe {row.result.get('probe')} at layer {row.result.get('layer')}: "
                "log-odds of its positive label",
            )
    cells = {
        cell: {
            m: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else None,
                "n": len(v)}
            for m, v in per_cell.items()
        }
        for cell, per_cell in sorted(values.items())
    }  # fmt: skip
    groups: dict[str, list[str]] = defaultdict(list)
    for m in metrics:
        groups[m.split(".")[0]].append(m)
    return {
        "models": sorted(models),
        "metrics": metrics,
        "groups": dict(groups),
        "labels": labels,
        "cells": cells,
    }
