"""The joint test of every term of a fitted model: a Wald χ² on the term's coefficients with
the fit's own covariance (cluster-robust when the errors are clustered), and a likelihood-ratio
χ² against the model refitted without them (model likelihood: not cluster-robust). A refit that
fails leaves its test an error in words, never an exception."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from orchestrator.analysis.regression_design import FitFailed
from orchestrator.analysis.result import TermTest

Refit = Callable[[list[int]], float]
"""The log-likelihood of the model refitted without the parameters at these positions."""


def joint_tests(res: Any, columns: dict[str, list[int]], refit: Refit) -> list[TermTest]:
    """One test per term of `columns` (its parameters' positions in `res.params`), in order."""
    return [_test(res, term, cols, refit) for term, cols in columns.items() if cols]


def _test(res: Any, term: str, cols: list[int], refit: Refit) -> TermTest:
    import numpy as np
    from scipy.stats import chi2

    out = TermTest(term=term, df=len(cols), wald_chi2=None, wald_p=None, lr_chi2=None, lr_p=None)
    errors = []
    constraints = np.eye(len(res.params))[cols]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # statsmodels' notes on its own defaults
            wald = res.wald_test(constraints, scalar=True, use_f=False)
        statistic = float(np.squeeze(wald.statistic))
        if not np.isfinite(statistic):
            raise FitFailed("its covariance is singular")
        out.wald_chi2, out.wald_p = statistic, float(chi2.sf(statistic, len(cols)))
    except (FitFailed, ValueError, np.linalg.LinAlgError) as e:
        errors.append(f"Wald test failed ({e})")
    try:
        # nested models: a negative difference is only the optimiser stopping a hair early
        lr = max(2 * (float(res.llf) - refit(cols)), 0.0)
        out.lr_chi2, out.lr_p = lr, float(chi2.sf(lr, len(cols)))
    except FitFailed as e:
        errors.append(f"refit without {term} failed: {e}")
    out.error = "; ".join(errors) or None
    return out
