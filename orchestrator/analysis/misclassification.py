"""Rates corrected for a judge's error: the Rogan–Gladen estimator with a delta-method interval,
and the Wilson interval at a (possibly fractional) effective sample size it draws on.

Rogan & Gladen (1978): a judge with sensitivity Se and specificity Sp that calls a share p_obs
of items positive implies a true share p = (p_obs + Sp − 1) / (Se + Sp − 1), clipped to [0, 1].
Its variance by the delta method, treating p_obs, Se and Sp as independent estimates:

    Var(p) ≈ (Var(p_obs) + p² Var(Se) + (1 − p)² Var(Sp)) / (Se + Sp − 1)²

(the partial derivatives are 1/J, −p/J and (1 − p)/J with J = Se + Sp − 1). Each input's
variance is taken from its Wilson 95% interval, ((hi − lo) / 2z)², not from p(1 − p)/n, so an
observed 0% or 100% (a judge that made no error on the labelled items) still carries its
uncertainty instead of none. The interval is p ± z·SE at the unclipped p, then clipped.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from orchestrator.analysis.result import Estimate, Rate

Z = 1.959963984540054
"""The 97.5% point of the standard normal: every interval here is 95%."""


def wilson(p: float, n: float) -> tuple[float, float]:
    """The Wilson 95% interval of a share p observed among n items (n may be an effective,
    fractional sample size)."""
    denom = 1 + Z * Z / n
    centre = (p + Z * Z / (2 * n)) / denom
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


class Corrected(NamedTuple):
    """A corrected rate and its interval, or why there is none."""

    corrected: float | None
    lo: float | None
    hi: float | None
    clipped: bool
    error: str | None


def _sd(lo: float | None, hi: float | None) -> float:
    assert lo is not None and hi is not None
    return (hi - lo) / (2 * Z)


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def rogan_gladen(raw: Rate, se: Estimate, sp: Estimate) -> Corrected:
    """`raw` (the judges' rate in a cell) corrected for their sensitivity and specificity."""
    if raw.rate is None:
        return Corrected(None, None, None, False, "no scored items in the cell")
    if se.value is None or sp.value is None:
        which = "sensitivity" if se.value is None else "specificity"
        return Corrected(None, None, None, False, f"{which} unknown (no labelled items for it)")
    j = se.value + sp.value - 1
    if j <= 0:
        why = "the judges do no better than chance against the human labels (Se + Sp ≤ 1)"
        return Corrected(None, None, None, False, why)
    p = (raw.rate + sp.value - 1) / j
    var = (
        _sd(raw.lo, raw.hi) ** 2
        + p * p * _sd(se.lo, se.hi) ** 2
        + (1 - p) ** 2 * _sd(sp.lo, sp.hi) ** 2
    ) / (j * j)
    half = Z * math.sqrt(var)
    return Corrected(_clip(p), _clip(p - half), _clip(p + half), not 0.0 <= p <= 1.0, None)
