"""Per-cell distributions of the enum and ordinal verdict fields, and means of the int and float
ones: what the judges said beyond the bool outcomes.

A distribution's intervals are simultaneous 95% multinomial intervals (Goodman, statsmodels):
Wilson-type intervals at a Bonferroni-corrected level, defined for a level with no items (its
interval runs from 0) and for a cell of one item. Goodman's chi-square approximation wants 5 or
more items at every level; below that the intervals are still given, marked `approximate`. A
cell without scored items, or a field with a single possible value, has no intervals, and its
`note` says why. Means carry a t interval (statsmodels `DescrStatsW`), from two items up.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from orchestrator.analysis.result_levels import Distribution, LevelShare, Mean
from orchestrator.protocol.schema import Protocol, VerdictField
from orchestrator.records import Verdict

ALPHA = 0.05
"""Level of every interval here (95%), as in rates.py."""

GOODMAN_MIN = 5
"""Items every level needs for Goodman's chi-square approximation (its rule of thumb)."""


def distribution(spec: VerdictField, values: list[Any]) -> Distribution:
    """How `values` (one per scored item, None where the verdict lacks the field) spread over
    the field's declared levels, with simultaneous 95% intervals."""
    from statsmodels.stats.proportion import multinomial_proportions_confint

    declared = spec.levels if spec.type == "ordinal" else spec.values
    kind = "ordinal" if spec.type == "ordinal" else "enum"
    counts = Counter(str(v) for v in values if v is not None)
    names = declared + sorted(set(counts) - set(declared))
    k = [counts[name] for name in names]
    n = sum(k)
    note = None
    intervals: list[tuple[float | None, float | None]] = [(None, None)] * len(names)
    if n == 0:
        note = "no scored items"
    elif len(names) < 2:
        note = f"`{names[0]}` is the field's only value: its share is 1 by construction"
    else:
        ci = multinomial_proportions_confint(k, alpha=ALPHA, method="goodman")
        intervals = [(float(lo), float(hi)) for lo, hi in ci]
    levels = [
        LevelShare(
            level=name,
            declared=name in declared,
            count=count,
            share=count / n if n else None,
            lo=lo,
            hi=hi,
        )
        for name, count, (lo, hi) in zip(names, k, intervals, strict=True)
    ]
    approximate = note is None and min(k) < GOODMAN_MIN
    return Distribution(kind=kind, n=n, levels=levels, approximate=approximate, note=note)


def mean(values: list[Any]) -> Mean:
    """The mean of the finite numbers among `values`, with its 95% t interval."""
    from statsmodels.stats.weightstats import DescrStatsW

    x = [float(v) for v in values if _number(v) and math.isfinite(v)]
    if not x:
        return Mean(n=0, mean=None, sd=None, lo=None, hi=None)
    if len(x) == 1:
        return Mean(n=1, mean=x[0], sd=None, lo=None, hi=None)
    stats = DescrStatsW(x)
    lo, hi = stats.tconfint_mean(alpha=ALPHA)
    return Mean(n=len(x), mean=float(stats.mean), sd=float(stats.std_ddof(1)), lo=lo, hi=hi)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def level_fields(protocol: Protocol) -> dict[str, VerdictField]:
    """The enum and ordinal verdict fields, in the protocol's order."""
    verdict = protocol.evaluation.verdict
    return {name: f for name, f in verdict.items() if f.type in ("enum", "ordinal")}


def number_fields(protocol: Protocol) -> list[str]:
    """The int and float verdict fields, in the protocol's order."""
    return [name for name, f in protocol.evaluation.verdict.items() if f.type in ("int", "float")]


def cell_levels(
    protocol: Protocol, scored: list[Verdict]
) -> tuple[dict[str, Distribution], dict[str, Mean]]:
    """One cell's distributions (enum and ordinal fields) and means (int and float fields)."""
    fields = [v.fields or {} for v in scored]
    distributions = {
        name: distribution(spec, [f.get(name) for f in fields])
        for name, spec in level_fields(protocol).items()
    }
    means = {name: mean([f.get(name) for f in fields]) for name in number_fields(protocol)}
    return distributions, means
