"""What every regression model shares: the scored items it selects, the full crossing of its
terms as a treatment-coded design, the names its coefficients get in the report, and the
reasons a design cannot be estimated whatever the model family."""

from __future__ import annotations

import keyword
import math
import re
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import product
from typing import Any

from orchestrator.analysis.rates import ALPHA, is_scored
from orchestrator.analysis.result import Coefficient, ModelFit
from orchestrator.protocol.schema import Protocol, RegressionModel, coefficient_name
from orchestrator.records import Item, Verdict

Value = bool | str
"""An item's outcome: a bool verdict, or an ordinal verdict's level."""

Row = tuple[Item, Value]
"""An item and its outcome."""

Cell = tuple[str | None, ...]
"""One combination of the terms' levels, in the order of the terms."""


class FitFailed(Exception):
    """The fit ran but gave nothing usable; the message says why, for the report."""


def term_levels(protocol: Protocol, spec: RegressionModel) -> dict[str, list[str]]:
    """Each term's levels in design order (the subjects' ids for `subject`)."""
    subjects = [s.id for s in protocol.subjects]
    return {
        t: subjects if t == "subject" else protocol.design.factors[t].levels for t in spec.terms
    }


def select_rows(
    spec: RegressionModel,
    outcome: str,
    items: list[Item],
    verdicts: dict[str, Verdict],
    kind: type,
) -> list[Row]:
    """The scored items at `spec.within` whose `outcome` verdict is a `kind` (bool or str)."""
    rows: list[Row] = []
    for item in items:
        v = verdicts.get(item.id)
        if not is_scored(v) or not all(level(item, f) == lv for f, lv in spec.within.items()):
            continue
        y = v.fields.get(outcome) if v and v.fields else None
        if isinstance(y, kind):
            rows.append((item, y))
    return rows


def level(item: Item, term: str) -> str | None:
    return item.subject if term == "subject" else item.levels.get(term)


def cells(spec: RegressionModel, rows: list[Row]) -> dict[Cell, list[Value]]:
    """The outcomes in each combination of levels that has items."""
    out: dict[Cell, list[Value]] = defaultdict(list)
    for item, y in rows:
        out[tuple(level(item, t) for t in spec.terms)].append(y)
    return out


def crossing(spec: RegressionModel, levels: dict[str, list[str]]) -> list[Cell]:
    return list(product(*(levels[t] for t in spec.terms)))


def cell_name(spec: RegressionModel, cell: Cell) -> str:
    return " × ".join(f"{t}={lv}" for t, lv in zip(spec.terms, cell, strict=True))


def where(spec: RegressionModel) -> str:
    return "".join(f" at {f}={lv}" for f, lv in spec.within.items())


def unfit_design(
    spec: RegressionModel, outcome: str, rows: list[Row], levels: dict[str, list[str]]
) -> str | None:
    """Why no model of `outcome` on the crossing can be estimated from `rows`, or None: no
    rows, a term with one value, a combination of levels without items."""
    if not rows:
        return f"no scored items with a {outcome} verdict{where(spec)}"
    for t in spec.terms:
        seen = sorted({str(level(item, t)) for item, _ in rows})
        if len(seen) < 2:
            return (
                f"{t} takes only one value ({seen[0]}) among the {len(rows)} scored items"
                f"{where(spec)}: there is nothing to compare"
            )
    found = cells(spec, rows)
    empty = [cell_name(spec, c) for c in crossing(spec, levels) if c not in found]
    if empty:
        return (
            f"no scored items in {', '.join(empty)}: the {' × '.join(spec.terms)} model needs "
            "items in every combination of levels (its design matrix is singular otherwise)"
        )
    return None


def too_few_clusters(spec: RegressionModel, rows: list[Row], parameters: int) -> str | None:
    """Errors clustered by task need more tasks than the model has parameters."""
    tasks = len({item.task_id for item, _ in rows})
    if spec.cluster == "task" and tasks <= parameters:
        return (
            f"only {tasks} tasks for {parameters} coefficients: errors clustered by task "
            "need more tasks than coefficients (the clustered covariance is singular "
            "otherwise); use cluster: none or more tasks"
        )
    return None


def identifiers(names: list[str]) -> dict[str, str]:
    """A formula-safe column name for each variable (usually the name itself)."""
    out: dict[str, str] = {}
    for name in names:
        col = re.sub(r"\W", "_", name)
        if not col.isidentifier() or keyword.iskeyword(col) or col in out.values():
            col = f"v{len(out)}_{col}"
        out[name] = col
    return out


def formula(spec: RegressionModel, columns: dict[str, str], outcome: str) -> str:
    return f"{columns[outcome]} ~ " + " * ".join(columns[t] for t in spec.terms)


def frame(
    columns: dict[str, str],
    outcome: str,
    y: list[Any],
    rows: list[Row],
    levels: dict[str, list[str]],
) -> Any:
    """The rows as a data frame: the outcome column `y`, each term as a categorical in design
    order (treatment coding takes the first level as the reference), and the task."""
    import pandas as pd

    data: dict[str, Any] = {columns[outcome]: y}
    for t, lv in levels.items():
        data[columns[t]] = pd.Categorical([level(i, t) for i, _ in rows], categories=lv)
    data["__task"] = [i.task_id for i, _ in rows]
    return pd.DataFrame(data)


def cluster_kwargs(frame: Any, cluster: str) -> dict[str, Any]:
    """statsmodels' fit arguments for errors clustered by task (none: the model's own)."""
    import pandas as pd

    if cluster != "task":
        return {}
    return {"cov_type": "cluster", "cov_kwds": {"groups": pd.factorize(frame["__task"])[0]}}


class Names:
    """The coefficients as statsmodels names them (`framing[T.deu]:subject[T.b]`) → the
    report's (`framing[deu]:subject[b]`), and the term of the crossing each belongs to
    (`framing:subject`), terms in the fit's order: main effects, then two-way, ..."""

    def __init__(
        self, spec: RegressionModel, columns: dict[str, str], levels: dict[str, list[str]]
    ) -> None:
        self.report: dict[str, str] = {"Intercept": "Intercept"}
        self.term: dict[str, str] = {}
        for pairs in spec.coefficients(levels):
            raw = ":".join(f"{columns[t]}[T.{lv}]" for t, lv in pairs)
            self.report[raw] = coefficient_name(pairs)
            self.term[raw] = ":".join(t for t, _ in pairs)
        self.terms = list(dict.fromkeys(self.term.values()))
        self.highest = self.terms[-1] if len(spec.terms) >= 2 else None

    def columns_of(self, names: list[str]) -> dict[str, list[int]]:
        """The positions in `names` (the fit's parameters) of each term's coefficients."""
        out: dict[str, list[int]] = {t: [] for t in self.terms}
        for k, name in enumerate(names):
            if name in self.term:
                out[self.term[name]].append(k)
        return out

    def interaction(self) -> str | None:
        """The highest-order interaction's coefficient, when it has exactly one."""
        top = [self.report[raw] for raw, t in self.term.items() if t == self.highest]
        return top[0] if len(top) == 1 else None


@contextmanager
def failures() -> Iterator[None]:
    """Raises statsmodels' separation, convergence and linear-algebra failures inside as
    `FitFailed`, with the reason in words."""
    import numpy as np
    from statsmodels.tools.sm_exceptions import (
        ConvergenceWarning,
        PerfectSeparationError,
        PerfectSeparationWarning,
    )

    with warnings.catch_warnings():
        # the conditions these warn about are reported as the model's error
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            yield
        except (PerfectSeparationWarning, PerfectSeparationError) as e:
            raise FitFailed(f"perfect separation: the estimates are infinite ({e})") from e
        except ConvergenceWarning as e:
            raise FitFailed(f"the fit did not converge ({e})") from e
        except np.linalg.LinAlgError as e:
            raise FitFailed(f"singular design or covariance matrix ({e})") from e


def parameters(res: Any) -> dict[str, Any]:
    """Each parameter's (coef, se, z, p, lo, hi) by statsmodels' name for it; raises
    `FitFailed` when any is not finite."""
    import numpy as np

    ci = np.asarray(res.conf_int(alpha=ALPHA))
    table = np.column_stack([res.params, res.bse, res.tvalues, res.pvalues, ci[:, 0], ci[:, 1]])
    if not np.isfinite(table).all():
        raise FitFailed("the fit gave non-finite estimates or standard errors (singular matrix)")
    return dict(zip(res.model.exog_names, table, strict=True))


def coefficient(term: str, row: Any) -> Coefficient:
    """A row of `parameters` as the report's coefficient `term`."""
    coef, se, z, p, lo, hi = (float(x) for x in row)
    return Coefficient(
        term=term, coef=coef, se=se, z=z, p=p, lo=lo, hi=hi, odds_ratio=math.exp(row[0])
    )


def unfitted(
    spec: RegressionModel,
    outcome: str,
    rows: list[Row],
    by_term: dict[str, list[str]],
    columns: dict[str, str],
    error: str | None,
    **family: Any,
) -> tuple[ModelFit, Names]:
    """A model's result before its fit (no coefficients yet; `error` says why there will be
    none), and the names its coefficients get; `by_term`: each term's levels, reference first.
    `family` sets what a family adds (ordinal: `family`, `levels`)."""
    names = Names(spec, columns, by_term)
    fit = ModelFit(
        name=spec.name,
        outcome=outcome,
        formula=formula(spec, columns, outcome),
        terms=list(spec.terms),
        within=dict(spec.within),
        n=len(rows),
        clusters=len({item.task_id for item, _ in rows}) if spec.cluster == "task" else None,
        cluster=spec.cluster,
        coefficients=[],
        interaction=None,
        interaction_term=names.highest,
        reference={t: by_term[t][0] for t in spec.terms},
        error=error,
        **family,
    )
    return fit, names
