"""The protocol's contrasts pooled across subjects: treatment − control over every subject's items
of the two arms, as the `arm` coefficient of the linear probability model `y ~ arm + C(subject)`
(OLS, statsmodels), errors clustered by task.

Subject fixed effects make the estimate a weighted average of each subject's own difference
(weights n_t·n_c/n), so a subject with a high base rate and more treatment items does not pass
its base rate off as an effect. A task's items appear in every subject and cell, so they are not
independent: the standard error is clustered by task and the t tests have tasks − 1 degrees of
freedom. With too few tasks, or nothing to estimate, a contrast gets `error` in words instead.
The pooled p-values are their own family per outcome, corrected with the protocol's method.
"""

from __future__ import annotations

from collections import defaultdict

from orchestrator.analysis.contrasts import adjust, arm_items
from orchestrator.analysis.rates import ALPHA, is_scored, rate
from orchestrator.analysis.result import ArmRate, Correction
from orchestrator.analysis.result_pooled import PooledContrast, PooledSubject
from orchestrator.protocol.schema import Contrast, Protocol
from orchestrator.records import Item, Verdict

MIN_TASKS = 3
"""Fewest tasks (clusters) a pooled estimate is given with: with two, its t test has one degree
of freedom and the clustered covariance rests on two sums."""

Row = tuple[str, str, int, int]
"""subject, task, arm (1 treatment, 0 control), y (1 when the outcome is true)."""


def pool_contrasts(
    protocol: Protocol, items: list[Item], verdicts: dict[str, Verdict]
) -> list[PooledContrast]:
    """Each contrast on each outcome, in the protocol's order, pooled over its subjects; empty
    with fewer than two subjects (there is nothing to pool)."""
    subjects = [s.id for s in protocol.subjects]
    if len(subjects) < 2:
        return []
    primary = protocol.analysis.primary
    return [
        pool(c, outcome, subjects, items, verdicts, named=outcome in c.named_for(primary))
        for c in protocol.analysis.contrasts
        for outcome in protocol.outcomes
    ]


def pool(
    c: Contrast,
    outcome: str,
    subjects: list[str],
    items: list[Item],
    verdicts: dict[str, Verdict],
    *,
    named: bool = True,
) -> PooledContrast:
    """One contrast on `outcome` over `subjects` (not yet corrected)."""
    rows: list[Row] = []
    for s in subjects:
        for arm, level in ((1, c.treatment), (0, c.control)):
            selected = arm_items(items, c, s, level)
            rows += [
                _row(i, arm, verdicts[i.id], outcome) for i in selected if _scored(i, verdicts)
            ]
    per_subject = _weighted([_subject(s, [r for r in rows if r[0] == s]) for s in subjects])
    treated = [r for r in rows if r[2] == 1]
    k_t, k_c = sum(r[3] for r in treated), sum(r[3] for r in rows if r[2] == 0)
    out = PooledContrast(
        name=c.name,
        outcome=outcome,
        named=named,
        treatment=ArmRate(level=c.treatment, **rate(k_t, len(treated)).model_dump()),
        control=ArmRate(level=c.control, **rate(k_c, len(rows) - len(treated)).model_dump()),
        estimate=None,
        se=None,
        df=None,
        lo=None,
        hi=None,
        p=None,
        n=len(rows),
        tasks=len({r[1] for r in rows}),
        subjects=per_subject,
        error=_unfit(c, outcome, rows, per_subject),
    )
    if out.error is None:
        _fit(out, rows)
    return out


def _scored(item: Item, verdicts: dict[str, Verdict]) -> bool:
    return is_scored(verdicts.get(item.id))


def _row(item: Item, arm: int, v: Verdict, outcome: str) -> Row:
    return item.subject, item.task_id, arm, int(bool(v.fields and v.fields.get(outcome) is True))


def _subject(s: str, rows: list[Row]) -> PooledSubject:
    """One subject's arms from its rows; its weight not yet normalised (n_t·n_c/n)."""
    treated, control = [r[3] for r in rows if r[2] == 1], [r[3] for r in rows if r[2] == 0]
    kt, nt, kc, nc = sum(treated), len(treated), sum(control), len(control)
    both = nt > 0 and nc > 0
    return PooledSubject(
        subject=s,
        k_treatment=kt,
        n_treatment=nt,
        k_control=kc,
        n_control=nc,
        diff=kt / nt - kc / nc if both else None,
        weight=nt * nc / (nt + nc) if both else 0.0,
    )


def _weighted(subjects: list[PooledSubject]) -> list[PooledSubject]:
    """The weights as shares of their sum (all 0 when no subject has both arms)."""
    total = sum(s.weight for s in subjects)
    for s in subjects:
        s.weight = s.weight / total if total else 0.0
    return subjects


def _unfit(c: Contrast, outcome: str, rows: list[Row], subjects: list[PooledSubject]) -> str | None:
    """Why the pooled contrast has no estimate, or None."""
    if c.treatment == c.control:
        return f"treatment and control are the same level ({c.control}): nothing to compare"
    if not any(s.weight for s in subjects):
        return (
            "no subject has scored items in both arms: with subject fixed effects a subject's "
            "items compare only with its own"
        )
    tasks = len({r[1] for r in rows})
    if tasks < MIN_TASKS:
        return (
            f"only {tasks} task{'s' * (tasks != 1)} among the {len(rows)} items: errors "
            f"clustered by task need at least {MIN_TASKS} tasks (with fewer, the clustered "
            "standard error rests on too few sums to mean anything)"
        )
    if len({r[3] for r in rows}) == 1:
        value = "true" if rows[0][3] else "false"
        return (
            f"{outcome} is {value} in all {len(rows)} items of both arms: the difference is 0 "
            "with no variation to estimate its standard error from"
        )
    return None


def _fit(out: PooledContrast, rows: list[Row]) -> None:
    """OLS of y on arm and subject dummies, errors clustered by task: sets the estimate, its
    t interval and p, or `error` when the covariance is singular."""
    import numpy as np
    import pandas as pd
    import statsmodels.formula.api as smf

    subject, task, arm, y = (list(col) for col in zip(*rows, strict=True))
    frame = pd.DataFrame({"y": y, "arm": arm, "subject": subject})
    groups = pd.factorize(pd.Series(task))[0]
    try:
        res = smf.ols("y ~ arm + C(subject)", frame).fit(
            cov_type="cluster", cov_kwds={"groups": groups}, use_t=True
        )
        lo, hi = res.conf_int(alpha=ALPHA).loc["arm"]
    except np.linalg.LinAlgError as e:
        out.error = f"singular design or covariance matrix ({e})"
        return
    estimate, se, p = res.params["arm"], res.bse["arm"], res.pvalues["arm"]
    if not (np.isfinite([estimate, se, p, lo, hi]).all() and se > 0):
        out.error = (
            f"the clustered standard error is {se:g}: the covariance is singular (the outcome "
            "does not vary within enough tasks)"
        )
        return
    # an estimate of exactly no difference comes out of the solver as ±1e-17: show it as 0
    # (+ 0.0 turns a rounded -0.0 into 0.0, which the report would print as "-0.0")
    out.estimate, out.se, out.p = float(round(estimate, 12)) + 0.0, float(se), float(p)
    out.lo, out.hi, out.df = float(lo), float(hi), int(res.df_resid_inference)


def correct_pooled(pooled: list[PooledContrast], protocol: Protocol) -> Correction | None:
    """Set `p_adjusted` and `rejected` on each pooled contrast: each outcome's pooled contrasts
    are one family, apart from the per-subject ones. None when there is nothing pooled."""
    if not pooled:
        return None
    method = protocol.analysis.correction
    families: dict[str, list[PooledContrast]] = defaultdict(list)
    for c in pooled:
        families[c.outcome].append(c)
    for family in families.values():
        for c, (p, rejected) in zip(family, adjust([c.p for c in family], method), strict=True):
            c.p_adjusted, c.rejected = p, rejected
    tests = max(sum(c.p is not None for c in f) for f in families.values())
    n = len(protocol.analysis.contrasts)
    return Correction(
        method=method,
        alpha=ALPHA,
        family=f"each outcome's {n} pooled contrast{'s' * (n != 1)}",
        tests=tests,
    )


def _t(c: PooledContrast) -> tuple[float, float, int]:
    assert c.estimate is not None and c.se is not None and c.df is not None
    return c.estimate, c.se, c.df


def t_interval(c: PooledContrast, alpha: float) -> tuple[float, float]:
    """The estimate's 1 − alpha t interval (tasks − 1 degrees of freedom)."""
    from scipy.stats import t

    est, se, df = _t(c)
    half = float(t.ppf(1 - alpha / 2, df)) * se
    return est - half, est + half


def t_two_sided(c: PooledContrast, value: float) -> float:
    """Two-sided p of H0: Δ = value, by the cluster-robust t."""
    from scipy.stats import t

    est, se, df = _t(c)
    return float(2 * t.sf(abs(est - value) / se, df))


def t_equivalence(c: PooledContrast, margin: float) -> float:
    """TOST p of H0: |Δ| ≥ margin (the larger of the two one-sided p), by the same t."""
    from scipy.stats import t

    est, se, df = _t(c)
    return float(max(t.sf((est + margin) / se, df), t.cdf((est - margin) / se, df)))
