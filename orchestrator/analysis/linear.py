"""A sum of independent arm rates, Δ = Σ c·k/n (a contrast, a difference of contrasts, one
effect in two subjects): its interval and its test at a boundary.

The interval is MOVER-Wilson (Zou & Donner 2008, "Construction of confidence limits about effect
measures"): each arm's Wilson interval, recovered into the sum's. For one difference of two rates
it is exactly Newcombe's hybrid score interval, the one the contrasts table shows. The test is a
Wald z on the same sum with each arm's own variance, adjusted as Price & Bonett (2004) adjust it
so that arms at 0% or 100% keep a test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    """One arm in the sum: its coefficient and k positives of n scored items."""

    coef: float
    k: int
    n: int

    @property
    def rate(self) -> float:
        return self.k / self.n


def estimate(terms: list[Term]) -> float:
    return sum(t.coef * t.rate for t in terms)


def mover_wilson(terms: list[Term], alpha: float) -> tuple[float, float]:
    """The sum's 1 − alpha interval from each arm's Wilson interval (every n > 0)."""
    from statsmodels.stats.proportion import proportion_confint

    below = above = 0.0
    for t in terms:
        lo, hi = (float(x) for x in proportion_confint(t.k, t.n, alpha=alpha, method="wilson"))
        # a negative coefficient turns the arm's upper end into the sum's lower one
        low_end, high_end = sorted((t.coef * lo, t.coef * hi))
        below += (t.coef * t.rate - low_end) ** 2
        above += (high_end - t.coef * t.rate) ** 2
    mid = estimate(terms)
    return mid - math.sqrt(below), mid + math.sqrt(above)


def _adjusted(terms: list[Term]) -> tuple[float, float]:
    """The sum and its standard error with 2/m positives added to each of the m arms out of
    4/m more items (Price & Bonett 2004; Agresti & Caffo's +1/+2 for a single difference), so
    an arm at 0% or 100% still has a variance."""
    add_k, add_n = 2 / len(terms), 4 / len(terms)
    est = var = 0.0
    for t in terms:
        p = (t.k + add_k) / (t.n + add_n)
        est += t.coef * p
        var += t.coef**2 * p * (1 - p) / (t.n + add_n)
    return est, math.sqrt(var)


def z_two_sided(terms: list[Term], value: float) -> float:
    """Two-sided p of H0: Δ = value, by the adjusted Wald z."""
    from scipy.stats import norm

    est, se = _adjusted(terms)
    return float(2 * norm.sf(abs(est - value) / se))


def z_equivalence(terms: list[Term], margin: float) -> float:
    """TOST p of H0: |Δ| ≥ margin (the larger of the two one-sided p), by the adjusted Wald z."""
    from scipy.stats import norm

    est, se = _adjusted(terms)
    above = norm.sf((est + margin) / se)  # H0: Δ ≤ −margin
    below = norm.cdf((est - margin) / se)  # H0: Δ ≥ +margin
    return float(max(above, below))
