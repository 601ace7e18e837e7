"""The protocol's logistic regressions: the full crossing of the model's terms on the scored
items it selects, treatment coding, errors clustered by task when the model says so.

A model that cannot be estimated (nothing to compare, an empty combination of levels, perfect
separation, too few clusters) gets `error` in words and no coefficients, never an exception or
huge numbers.
"""

from __future__ import annotations

import keyword
import math
import re
import warnings
from collections import defaultdict
from itertools import product
from typing import Any

from orchestrator.analysis.rates import ALPHA, is_scored
from orchestrator.analysis.result import Coefficient, ModelFit
from orchestrator.protocol.schema import Protocol, RegressionModel, coefficient_name
from orchestrator.records import Item, Verdict

Row = tuple[Item, bool]
"""An item and its outcome."""


def logistic(
    protocol: Protocol, spec: RegressionModel, items: list[Item], verdicts: dict[str, Verdict]
) -> ModelFit:
    """The protocol's regression `spec` on the scored items it selects (see `fit_logistic`)."""
    outcome = spec.outcome or protocol.analysis.primary
    subjects = [s.id for s in protocol.subjects]
    levels = {
        t: subjects if t == "subject" else protocol.design.factors[t].levels for t in spec.terms
    }
    rows = []
    for item in items:
        v = verdicts.get(item.id)
        if not is_scored(v) or not all(_level(item, f) == lv for f, lv in spec.within.items()):
            continue
        y = v.fields.get(outcome) if v and v.fields else None
        if isinstance(y, bool):
            rows.append((item, y))
    return fit_logistic(spec, outcome, rows, levels)


def fit_logistic(
    spec: RegressionModel, outcome: str, rows: list[Row], levels: dict[str, list[str]]
) -> ModelFit:
    """Logistic regression of `outcome` on the full crossing of `spec.terms` (treatment coding,
    reference = first of `levels[term]`), errors clustered by task when `spec.cluster` says so.

    The crossed model is saturated: it fits every cell's rate exactly. So its estimates are
    finite only if every cell has items with both outcomes; any other data gets `error` in
    words and no coefficients.
    """
    columns = _identifiers([outcome, *spec.terms])
    formula = f"{columns[outcome]} ~ " + " * ".join(columns[t] for t in spec.terms)
    tasks = {item.task_id for item, _ in rows}
    out = ModelFit(
        name=spec.name,
        outcome=outcome,
        formula=formula,
        terms=list(spec.terms),
        within=dict(spec.within),
        n=len(rows),
        clusters=len(tasks) if spec.cluster == "task" else None,
        cluster=spec.cluster,
        coefficients=[],
        interaction=None,
        reference={t: levels[t][0] for t in spec.terms},
        error=_unfit(spec, outcome, rows, levels),
    )
    if out.error is not None:
        return out
    try:
        fitted = _fit(formula, _frame(columns, outcome, rows, levels), spec.cluster)
    except _FitFailed as e:
        out.error = str(e)
        return out
    names = _term_names(spec, columns, levels)
    highest = len(spec.terms)
    top = [names[c.term][0] for c in fitted if c.term in names and names[c.term][1] == highest]
    for c in fitted:
        c.term = names.get(c.term, (c.term, 0))[0]
    out.coefficients = fitted
    out.interaction = top[0] if highest >= 2 and len(top) == 1 else None
    return out


class _FitFailed(Exception):
    """The fit ran but gave nothing usable; the message says why, for the report."""


def _level(item: Item, term: str) -> str | None:
    return item.subject if term == "subject" else item.levels.get(term)


def _unfit(
    spec: RegressionModel, outcome: str, rows: list[Row], levels: dict[str, list[str]]
) -> str | None:
    """Why the model cannot be estimated from `rows`, or None."""
    where = "".join(f" at {f}={lv}" for f, lv in spec.within.items())
    if not rows:
        return f"no scored items with a {outcome} verdict{where}"
    for t in spec.terms:
        seen = sorted({str(_level(item, t)) for item, _ in rows})
        if len(seen) < 2:
            return (
                f"{t} takes only one value ({seen[0]}) among the {len(rows)} scored items"
                f"{where}: there is nothing to compare"
            )
    cells: dict[tuple[str | None, ...], list[bool]] = defaultdict(list)
    for item, y in rows:
        cells[tuple(_level(item, t) for t in spec.terms)].append(y)

    def name(cell: tuple[str | None, ...]) -> str:
        return " × ".join(f"{t}={lv}" for t, lv in zip(spec.terms, cell, strict=True))

    crossing = list(product(*(levels[t] for t in spec.terms)))
    empty = [name(c) for c in crossing if c not in cells]
    if empty:
        return (
            f"no scored items in {', '.join(empty)}: the {' × '.join(spec.terms)} model needs "
            "items in every combination of levels (its design matrix is singular otherwise)"
        )
    constant = [
        f"{name(c)} has {outcome}={str(cells[c][0]).lower()} in all {len(cells[c])} items"
        for c in crossing
        if len(set(cells[c])) == 1
    ]
    if constant:
        return (
            f"perfect separation: {'; '.join(constant)}. The maximum-likelihood log odds there "
            "are infinite, so the model has no finite estimates; compare the cell rates and "
            "contrasts instead, or collect more items"
        )
    tasks = len({item.task_id for item, _ in rows})
    if spec.cluster == "task" and tasks <= len(crossing):
        return (
            f"only {tasks} tasks for {len(crossing)} coefficients: errors clustered by task "
            "need more tasks than coefficients (the clustered covariance is singular "
            "otherwise); use cluster: none or more tasks"
        )
    return None


def _identifiers(names: list[str]) -> dict[str, str]:
    """A formula-safe column name for each variable (usually the name itself)."""
    out: dict[str, str] = {}
    for name in names:
        col = re.sub(r"\W", "_", name)
        if not col.isidentifier() or keyword.iskeyword(col) or col in out.values():
            col = f"v{len(out)}_{col}"
        out[name] = col
    return out


def _frame(
    columns: dict[str, str], outcome: str, rows: list[Row], levels: dict[str, list[str]]
) -> Any:
    import pandas as pd

    data: dict[str, Any] = {columns[outcome]: [int(y) for _, y in rows]}
    for t, lv in levels.items():
        # categories in design order: treatment coding takes the first as the reference
        data[columns[t]] = pd.Categorical([_level(i, t) for i, _ in rows], categories=lv)
    data["__task"] = [i.task_id for i, _ in rows]
    return pd.DataFrame(data)


def _fit(formula: str, frame: Any, cluster: str) -> list[Coefficient]:
    """The fitted coefficients, named as statsmodels names them."""
    import numpy as np
    import pandas as pd
    import statsmodels.api as sm
    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import (
        ConvergenceWarning,
        PerfectSeparationError,
        PerfectSeparationWarning,
    )

    kw: dict[str, Any] = {}
    if cluster == "task":
        kw = {"cov_type": "cluster", "cov_kwds": {"groups": pd.factorize(frame["__task"])[0]}}
    try:
        with warnings.catch_warnings():
            # the conditions these warn about are reported as the model's error below
            warnings.simplefilter("error", PerfectSeparationWarning)
            warnings.simplefilter("error", ConvergenceWarning)
            model = smf.glm(formula, frame, family=sm.families.Binomial())
            res = model.fit(**kw)
            ci = res.conf_int(alpha=ALPHA)
    except (PerfectSeparationWarning, PerfectSeparationError) as e:
        raise _FitFailed(f"perfect separation: the estimates are infinite ({e})") from e
    except ConvergenceWarning as e:
        raise _FitFailed(f"the fit did not converge ({e})") from e
    except np.linalg.LinAlgError as e:
        raise _FitFailed(f"singular design or covariance matrix ({e})") from e
    table = np.column_stack([res.params, res.bse, res.tvalues, res.pvalues, ci[0], ci[1]])
    if not np.isfinite(table).all():
        raise _FitFailed("the fit gave non-finite estimates or standard errors (singular matrix)")
    return [_coefficient(term, row) for term, row in zip(res.params.index, table, strict=True)]


def _coefficient(term: str, row: Any) -> Coefficient:
    coef, se, z, p, lo, hi = (float(x) for x in row)
    return Coefficient(
        term=term, coef=coef, se=se, z=z, p=p, lo=lo, hi=hi, odds_ratio=math.exp(row[0])
    )


def _term_names(
    spec: RegressionModel, columns: dict[str, str], levels: dict[str, list[str]]
) -> dict[str, tuple[str, int]]:
    """Coefficient names as statsmodels gives them (`framing[T.deu]:subject[T.b]`) → the
    report's (`framing[deu]:subject[b]`) and the number of terms they interact (0: intercept)."""
    names = {"Intercept": ("Intercept", 0)}
    for pairs in spec.coefficients(levels):
        raw = ":".join(f"{columns[t]}[T.{lv}]" for t, lv in pairs)
        names[raw] = (coefficient_name(pairs), len(pairs))
    return names
