"""Ordinal logistic regression (proportional odds, statsmodels `OrderedModel` with a logit
link) of an ordinal verdict field on the full crossing of a model's terms: treatment coding
with no intercept (the thresholds between the outcome's levels replace it), errors clustered by
task when the model says so, and the joint test of every term.

A coefficient is the log cumulative odds of a *higher* level: positive where the outcome tends
to be higher than at the reference levels. Like the logistic model, one that cannot be
estimated gets `error` in words and no coefficients.
"""

from __future__ import annotations

from typing import Any

from orchestrator.analysis.regression_design import (
    FitFailed,
    Row,
    cell_name,
    cells,
    cluster_kwargs,
    coefficient,
    crossing,
    failures,
    frame,
    identifiers,
    parameters,
    too_few_clusters,
    unfit_design,
    unfitted,
    where,
)
from orchestrator.analysis.regression_tests import joint_tests
from orchestrator.analysis.result import ModelFit, Threshold
from orchestrator.protocol.schema import RegressionModel

FIT = {"method": "bfgs", "maxiter": 2000, "disp": False}
"""How OrderedModel is maximised (its default, Nelder-Mead for 500 steps, stops short)."""


def fit_ordinal(
    spec: RegressionModel,
    outcome: str,
    outcome_levels: list[str],
    rows: list[Row],
    levels: dict[str, list[str]],
) -> ModelFit:
    """Ordinal logistic regression of `outcome` (levels lowest first) on the full crossing of
    `spec.terms` (reference = first of `levels[term]`). Levels no item took have no threshold
    and are left out of the fit (`ModelFit.levels` says which were used)."""
    columns = identifiers([outcome, *spec.terms])
    observed = [lv for lv in outcome_levels if any(y == lv for _, y in rows)]
    error = _unfit(spec, outcome, observed, rows, levels)
    out, names = unfitted(
        spec, outcome, rows, levels, columns, error, family="ordinal", levels=observed
    )
    if out.error is not None:
        return out
    try:
        res, table = _fit(out.formula, _frame(columns, outcome, observed, rows, levels), spec)
    except FitFailed as e:
        out.error = str(e)
        return out
    out.coefficients = [
        coefficient(names.report[raw], row) for raw, row in table.items() if raw in names.report
    ]
    cuts = res.model.transform_threshold_params(res.params)[1:-1]
    out.thresholds = [
        Threshold(below=lo, above=hi, value=float(v))
        for lo, hi, v in zip(observed[:-1], observed[1:], cuts, strict=True)
    ]
    out.interaction = names.interaction()
    out.tests = joint_tests(res, names.columns_of(list(res.model.exog_names)), _refit(res))
    return out


def _unfit(
    spec: RegressionModel,
    outcome: str,
    observed: list[str],
    rows: list[Row],
    levels: dict[str, list[str]],
) -> str | None:
    """Why the model cannot be estimated from `rows`, or None: the design's reasons, an
    outcome at one level, a combination of levels whose items all sit at one extreme level
    (its log cumulative odds are infinite), too few clusters."""
    error = unfit_design(spec, outcome, rows, levels)
    if error is not None:
        return error
    if len(observed) < 2:
        return (
            f"{outcome} takes only one level ({observed[0]}) among the {len(rows)} scored items"
            f"{where(spec)}: there is no order to model"
        )
    found = cells(spec, rows)
    extreme = [
        f"{cell_name(spec, c)} has {outcome}={found[c][0]} in all {len(found[c])} items"
        for c in crossing(spec, levels)
        if len(set(found[c])) == 1 and found[c][0] in (observed[0], observed[-1])
    ]
    if extreme:
        return (
            f"perfect separation: {'; '.join(extreme)}, the lowest or highest level observed "
            f"({observed[0]} … {observed[-1]}). The maximum-likelihood log cumulative odds there "
            "are infinite, so the model has no finite estimates; compare the cells' levels "
            "instead, or collect more items"
        )
    coefficients = len(crossing(spec, levels)) - 1  # no intercept
    return too_few_clusters(spec, rows, coefficients + len(observed) - 1)


def _frame(
    columns: dict[str, str],
    outcome: str,
    observed: list[str],
    rows: list[Row],
    levels: dict[str, list[str]],
) -> Any:
    import pandas as pd

    y = pd.Categorical([y for _, y in rows], categories=observed, ordered=True)
    return frame(columns, outcome, y, rows, levels)


def _fit(formula: str, data: Any, spec: RegressionModel) -> tuple[Any, dict[str, Any]]:
    """The fitted OrderedModel and its parameters; its failures raise `FitFailed`."""
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    with failures():
        model = OrderedModel.from_formula(formula, data, distr="logit")
        res = model.fit(**FIT, **cluster_kwargs(data, spec.cluster))
        if not res.mle_retvals.get("converged", True):
            raise FitFailed("the fit did not converge")
        return res, parameters(res)


def _refit(res: Any) -> Any:
    """The log-likelihood of the OrderedModel refitted without some of its coefficients."""
    import numpy as np
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    def llf(drop: list[int]) -> float:
        exog = np.delete(res.model.exog, drop, axis=1)
        with failures():
            fitted = OrderedModel(res.model.endog, exog, distr="logit").fit(**FIT)
            if not fitted.mle_retvals.get("converged", True):
                raise FitFailed("the fit did not converge")
            return float(fitted.llf)

    return llf
