"""The protocol's regression models: the full crossing of the model's terms on the scored items
it selects, treatment coding, errors clustered by task when the model says so, and the joint
test of every term. A bool outcome gets a logistic regression (here), an ordinal one an ordinal
logistic regression (regression_ordinal.py).

A model that cannot be estimated (nothing to compare, an empty combination of levels, perfect
separation, too few clusters) gets `error` in words and no coefficients, never an exception or
huge numbers.
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
    select_rows,
    term_levels,
    too_few_clusters,
    unfit_design,
    unfitted,
)
from orchestrator.analysis.regression_ordinal import fit_ordinal
from orchestrator.analysis.regression_tests import joint_tests
from orchestrator.analysis.result import ModelFit
from orchestrator.protocol.schema import Protocol, RegressionModel
from orchestrator.records import Item, Verdict


def fit_model(
    protocol: Protocol, spec: RegressionModel, items: list[Item], verdicts: dict[str, Verdict]
) -> ModelFit:
    """The protocol's regression `spec` on the scored items it selects: ordinal logistic for an
    ordinal outcome (see `fit_ordinal`), logistic otherwise (see `fit_logistic`)."""
    outcome = spec.outcome or protocol.analysis.primary
    levels = term_levels(protocol, spec)
    field = protocol.evaluation.verdict.get(outcome)
    if field is not None and field.type == "ordinal":
        rows = select_rows(spec, outcome, items, verdicts, str)
        return fit_ordinal(spec, outcome, field.levels, rows, levels)
    return fit_logistic(spec, outcome, select_rows(spec, outcome, items, verdicts, bool), levels)


def fit_logistic(
    spec: RegressionModel, outcome: str, rows: list[Row], levels: dict[str, list[str]]
) -> ModelFit:
    """Logistic regression of `outcome` on the full crossing of `spec.terms` (treatment coding,
    reference = first of `levels[term]`), errors clustered by task when `spec.cluster` says so.

    The crossed model is saturated: it fits every cell's rate exactly. So its estimates are
    finite only if every cell has items with both outcomes; any other data gets `error` in
    words and no coefficients.
    """
    columns = identifiers([outcome, *spec.terms])
    error = _unfit(spec, outcome, rows, levels)
    out, names = unfitted(spec, outcome, rows, levels, columns, error)
    if out.error is not None:
        return out
    data = frame(columns, outcome, [int(y) for _, y in rows], rows, levels)
    try:
        res, table = _fit(out.formula, data, spec.cluster)
    except FitFailed as e:
        out.error = str(e)
        return out
    out.coefficients = [coefficient(names.report.get(raw, raw), row) for raw, row in table.items()]
    out.interaction = names.interaction()
    out.tests = joint_tests(res, names.columns_of(list(res.model.exog_names)), _refit(res))
    return out


def _unfit(
    spec: RegressionModel, outcome: str, rows: list[Row], levels: dict[str, list[str]]
) -> str | None:
    """Why the model cannot be estimated from `rows`, or None."""
    error = unfit_design(spec, outcome, rows, levels)
    if error is not None:
        return error
    found = cells(spec, rows)
    constant = [
        f"{cell_name(spec, c)} has {outcome}={str(found[c][0]).lower()} in all {len(found[c])} "
        "items"
        for c in crossing(spec, levels)
        if len(set(found[c])) == 1
    ]
    if constant:
        return (
            f"perfect separation: {'; '.join(constant)}. The maximum-likelihood log odds there "
            "are infinite, so the model has no finite estimates; compare the cell rates and "
            "contrasts instead, or collect more items"
        )
    return too_few_clusters(spec, rows, len(crossing(spec, levels)))


def _fit(formula: str, frame: Any, cluster: str) -> tuple[Any, dict[str, Any]]:
    """The fitted statsmodels GLM and its parameters; its failures raise `FitFailed`."""
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    with failures():
        res = smf.glm(formula, frame, family=sm.families.Binomial()).fit(
            **cluster_kwargs(frame, cluster)
        )
        return res, parameters(res)


def _refit(res: Any) -> Any:
    """The log-likelihood of the GLM refitted without some of its columns."""
    import numpy as np
    import statsmodels.api as sm

    def llf(drop: list[int]) -> float:
        exog = np.delete(res.model.exog, drop, axis=1)
        with failures():
            return float(sm.GLM(res.model.endog, exog, family=sm.families.Binomial()).fit().llf)

    return llf
