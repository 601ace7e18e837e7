"""Per-cell outcome rates with Wilson intervals; the protocol's contrasts (Fisher p-values,
corrected for multiple comparisons per outcome) and logistic regressions; false alarms; bounds on
what the missing verdicts could change; how probe readouts track the verdicts.

Unscored items are counted per cell and kept out of the denominator — they are missing data, not
negatives (`missing` gives the rates if they had all been one or the other). Intervals, the
corrections and the regressions come from statsmodels; the exact tests from scipy.
"""

from __future__ import annotations

import keyword
import math
import re
import warnings
from collections import Counter, defaultdict
from itertools import combinations, product
from typing import Any

from orchestrator.protocol.schema import Contrast, Protocol, RegressionModel
from orchestrator.records import Item, Records, Verdict

ALPHA = 0.05
"""Level of the corrected tests (`rejected`) and of every interval (95%)."""


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


def group_by_cell(items: list[Item]) -> dict[str, list[Item]]:
    """Items by cell key, in the order given."""
    by_cell: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_cell[item.cell].append(item)
    return by_cell


def analyze_records(protocol: Protocol, records: Records) -> dict[str, Any]:
    items = records.items()
    verdicts = primary_verdicts(records.verdicts())
    screen = records.screen()
    by_cell = group_by_cell(items)
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
    correction = correct(contrasts, protocol)
    probes = summarise_probes(records, items)
    probes["association"] = associate(records, items, verdicts, protocol.analysis.primary)
    return {
        "probes": probes,
        "primary": protocol.analysis.primary,
        "outcomes": protocol.outcomes,
        "cells": cells,
        "contrasts": contrasts,
        "correction": correction,
        "models": [logistic(protocol, m, items, verdicts) for m in protocol.analysis.models],
        "false_alarms": false_alarms(protocol.analysis.primary, by_cell, verdicts),
        "missing": missing(protocol.outcomes, by_cell, verdicts),
        "totals": {
            "items": len(items),
            "scored": sum(1 for i in items if _scored(verdicts.get(i.id))),
            "unscored": sum(1 for i in items if not _scored(verdicts.get(i.id))),
        },
    }


def _scored(v: Verdict | None) -> bool:
    return v is not None and v.status == "scored" and v.fields is not None


def arm_items(items: list[Item], c: Contrast, subject: str, level: str) -> list[Item]:
    """The items of one arm of a contrast: this subject, the factor at `level`, `within` held."""
    return [
        i
        for i in items
        if i.subject == subject
        and i.levels.get(c.factor) == level
        and all(i.levels.get(f) == lv for f, lv in c.within.items())
    ]


def _contrast(
    c: Contrast, subject: str, outcome: str, items: list[Item], verdicts: dict[str, Verdict]
) -> dict[str, Any]:
    def arm(level: str) -> tuple[int, int]:
        arm_ = arm_items(items, c, subject, level)
        chosen = [verdicts[i.id] for i in arm_ if _scored(verdicts.get(i.id))]
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


# --- multiple comparisons -----------------------------------------------------------------


def adjust(
    pvalues: list[float | None], method: str, alpha: float = ALPHA
) -> list[tuple[float | None, bool | None]]:
    """Adjusted p-value and rejection at `alpha` for each test of one family.

    `method` is a statsmodels `multipletests` method (holm, bonferroni, fdr_bh) or `none`. A
    missing p-value (no test: an arm without scored items) stays missing and is not counted in
    the family.
    """
    present = [p for p in pvalues if p is not None]
    if not present:
        return [(None, None) for _ in pvalues]
    if method == "none":
        adjusted, rejected = list(present), [p <= alpha for p in present]
    else:
        from statsmodels.stats.multitest import multipletests

        rejected, adjusted, _, _ = multipletests(present, alpha=alpha, method=method)
    done = iter(zip(adjusted, rejected, strict=True))
    return [(None, None) if p is None else _floats(next(done)) for p in pvalues]


def _floats(pair: tuple[Any, Any]) -> tuple[float, bool]:
    return float(pair[0]), bool(pair[1])


def correct(contrasts: list[dict[str, Any]], protocol: Protocol) -> dict[str, Any]:
    """Set `p_adjusted` and `rejected` on each contrast; each outcome's tests are one family."""
    method = protocol.analysis.correction
    families: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in contrasts:
        families[c["outcome"]].append(c)
    for family in families.values():
        adjusted = adjust([c["fisher_p"] for c in family], method)
        for c, (p, rejected) in zip(family, adjusted, strict=True):
            c.update(p_adjusted=p, rejected=rejected)
    tests = max((sum(c["fisher_p"] is not None for c in f) for f in families.values()), default=0)
    n_c, n_s = len(protocol.analysis.contrasts), len(protocol.subjects)
    return {
        "method": method,
        "alpha": ALPHA,
        "family": f"each outcome's {n_c} contrast{'s' * (n_c != 1)} × {n_s} "
        f"subject{'s' * (n_s != 1)}",
        "tests": tests,
    }


# --- logistic regressions -----------------------------------------------------------------


def logistic(
    protocol: Protocol, spec: RegressionModel, items: list[Item], verdicts: dict[str, Verdict]
) -> dict[str, Any]:
    """The protocol's regression `spec` on the scored items it selects (see `fit_logistic`)."""
    outcome = spec.outcome or protocol.analysis.primary
    subjects = [s.id for s in protocol.subjects]
    levels = {
        t: subjects if t == "subject" else protocol.design.factors[t].levels for t in spec.terms
    }
    rows = []
    for item in items:
        v = verdicts.get(item.id)
        if not _scored(v) or not all(_level(item, f) == lv for f, lv in spec.within.items()):
            continue
        y = v.fields.get(outcome) if v and v.fields else None
        if isinstance(y, bool):
            rows.append((item, y))
    return fit_logistic(spec, outcome, rows, levels)


def fit_logistic(
    spec: RegressionModel,
    outcome: str,
    rows: list[tuple[Item, bool]],
    levels: dict[str, list[str]],
) -> dict[str, Any]:
    """Logistic regression of `outcome` on the full crossing of `spec.terms` (treatment coding,
    reference = first of `levels[term]`), errors clustered by task when `spec.cluster` says so.

    The crossed model is saturated: it fits every cell's rate exactly. So its estimates are
    finite only if every cell has items with both outcomes; any other data gets `error` in
    words and no coefficients, never an exception or huge numbers.
    """
    columns = _identifiers([outcome, *spec.terms])
    formula = f"{columns[outcome]} ~ " + " * ".join(columns[t] for t in spec.terms)
    tasks = {item.task_id for item, _ in rows}
    out: dict[str, Any] = {
        "name": spec.name,
        "outcome": outcome,
        "formula": formula,
        "terms": list(spec.terms),
        "within": dict(spec.within),
        "n": len(rows),
        "clusters": len(tasks) if spec.cluster == "task" else None,
        "cluster": spec.cluster,
        "coefficients": [],
        "interaction": None,
        "reference": {t: levels[t][0] for t in spec.terms},
        "error": _unfit(spec, outcome, rows, levels),
    }
    if out["error"] is not None:
        return out
    try:
        coefficients = _fit(formula, _frame(columns, outcome, rows, levels), spec.cluster)
    except _FitFailed as e:
        return {**out, "error": str(e)}
    names = _term_names(spec.terms, columns, levels)
    top = [names[c["term"]][0] for c in coefficients
           if c["term"] in names and names[c["term"]][1] == len(spec.terms)]  # fmt: skip
    coefficients = [{**c, "term": names.get(c["term"], (c["term"], 0))[0]} for c in coefficients]
    interaction = top[0] if len(spec.terms) >= 2 and len(top) == 1 else None
    return {**out, "coefficients": coefficients, "interaction": interaction}


class _FitFailed(Exception):
    """The fit ran but gave nothing usable; the message says why, for the report."""


def _level(item: Item, term: str) -> str | None:
    return item.subject if term == "subject" else item.levels.get(term)


def _unfit(
    spec: RegressionModel, outcome: str, rows: list[tuple[Item, bool]], levels: dict[str, list[str]]
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
    columns: dict[str, str],
    outcome: str,
    rows: list[tuple[Item, bool]],
    levels: dict[str, list[str]],
) -> Any:
    import pandas as pd

    data: dict[str, Any] = {columns[outcome]: [int(y) for _, y in rows]}
    for t, lv in levels.items():
        # categories in design order: treatment coding takes the first as the reference
        data[columns[t]] = pd.Categorical([_level(i, t) for i, _ in rows], categories=lv)
    data["__task"] = [i.task_id for i, _ in rows]
    return pd.DataFrame(data)


def _fit(formula: str, frame: Any, cluster: str) -> list[dict[str, Any]]:
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
    keys = ("coef", "se", "z", "p", "lo", "hi")
    return [
        {"term": term, **{k: float(x) for k, x in zip(keys, row, strict=True)},
         "odds_ratio": math.exp(row[0])}
        for term, row in zip(res.params.index, table, strict=True)
    ]  # fmt: skip


def _term_names(
    terms: list[str], columns: dict[str, str], levels: dict[str, list[str]]
) -> dict[str, tuple[str, int]]:
    """Coefficient names as statsmodels gives them (`framing[T.deu]:subject[T.b]`) → the
    report's (`framing[deu]:subject[b]`) and the number of terms they interact (0: intercept)."""
    names = {"Intercept": ("Intercept", 0)}
    for r in range(1, len(terms) + 1):
        for subset in combinations(terms, r):
            for lvs in product(*(levels[t][1:] for t in subset)):
                pairs = list(zip(subset, lvs, strict=True))
                raw = ":".join(f"{columns[t]}[T.{lv}]" for t, lv in pairs)
                names[raw] = (":".join(f"{t}[{lv}]" for t, lv in pairs), r)
    return names


# --- false alarms and missing data --------------------------------------------------------


def _count(items: list[Item], verdicts: dict[str, Verdict], outcome: str) -> tuple[int, int]:
    """(positives, scored) among `items`."""
    scored = [verdicts[i.id] for i in items if _scored(verdicts.get(i.id))]
    return sum(1 for v in scored if v.fields and v.fields.get(outcome) is True), len(scored)


def false_alarms(
    outcome: str, by_cell: dict[str, list[Item]], verdicts: dict[str, Verdict]
) -> list[dict[str, Any]]:
    """`outcome` rate in the cells with nothing planted, when other cells had plants."""
    if not any(i.plant_id is not None for cell in by_cell.values() for i in cell):
        return []
    out = []
    for key, cell in by_cell.items():
        if all(i.plant_id is None for i in cell):
            k, n = _count(cell, verdicts, outcome)
            out.append({"cell": key, "subject": cell[0].subject, "levels": cell[0].levels,
                        **rate(k, n)})  # fmt: skip
    return out


def bounds(k: int, n: int, u: int) -> dict[str, float | None]:
    """A rate of k in n scored items, and its values if all u unscored ones were negative
    (`low`) or positive (`high`)."""
    total = n + u
    return {
        "observed": k / n if n else None,
        "low": k / total if total else None,
        "high": (k + u) / total if total else None,
    }


def missing(
    outcomes: list[str], by_cell: dict[str, list[Item]], verdicts: dict[str, Verdict]
) -> list[dict[str, Any]]:
    """Per cell: how many items went unscored, why, and how far each rate could move."""
    out = []
    for key, cell in by_cell.items():
        reasons = Counter(
            _why_unscored(verdicts.get(i.id)) for i in cell if not _scored(verdicts.get(i.id))
        )
        u = sum(reasons.values())
        out.append(
            {
                "cell": key,
                "subject": cell[0].subject,
                "levels": cell[0].levels,
                "items": len(cell),
                "scored": len(cell) - u,
                "unscored": u,
                "reasons": dict(reasons),
                "bounds": {o: bounds(*_count(cell, verdicts, o), u) for o in outcomes},
            }
        )
    return out


def _why_unscored(v: Verdict | None) -> str:
    if v is None:
        return "no verdict"
    if v.reason:
        return v.reason
    return "scored without fields" if v.status == "scored" else "no reason recorded"


# --- probes ------------------------------------------------------------------------------


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


def associate(
    records: Records, items: list[Item], verdicts: dict[str, Verdict], outcome: str
) -> list[dict[str, Any]]:
    """How well each probe metric separates scored items with `outcome` true from false.

    One value per item and metric (its latest readout). AUROC is the Mann–Whitney U of the
    positives over n_pos × n_neg: the chance that a random positive reads higher than a random
    negative (ties count half); 0.5 is no association.
    """
    labels = {}
    for item in items:
        v = verdicts.get(item.id)
        if _scored(v) and v and v.fields and isinstance(v.fields.get(outcome), bool):
            labels[item.id] = v.fields[outcome]
    known = {i.id for i in items}
    values: dict[str, dict[str, float]] = defaultdict(dict)
    for row in records.probe_results():
        if row.item_id in known and row.result is not None:
            for metric, x in probe_metrics(row.probe, row.result).items():
                values[metric][row.item_id] = x
    out = []
    for metric in sorted(values):
        pairs = [(labels[i], x) for i, x in values[metric].items() if i in labels]
        pos = [x for y, x in pairs if y and math.isfinite(x)]
        neg = [x for y, x in pairs if not y and math.isfinite(x)]
        area, p = auroc(pos, neg)
        out.append(
            {
                "metric": metric,
                "outcome": outcome,
                "n": len(pos) + len(neg),
                "n_pos": len(pos),
                "n_neg": len(neg),
                "auroc": area,
                "p": p,
                "mean_pos": sum(pos) / len(pos) if pos else None,
                "mean_neg": sum(neg) / len(neg) if neg else None,
            }
        )
    return out


def auroc(pos: list[float], neg: list[float]) -> tuple[float | None, float | None]:
    """(AUROC, two-sided Mann–Whitney p) of values in positives vs negatives; None if a group
    is empty."""
    if not pos or not neg:
        return None, None
    from scipy.stats import mannwhitneyu

    u, p = mannwhitneyu(pos, neg, alternative="two-sided")
    return float(u) / (len(pos) * len(neg)), float(p) if math.isfinite(p) else None
