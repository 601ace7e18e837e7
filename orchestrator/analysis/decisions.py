"""The hypotheses decided: each pre-registered test's estimates, their p corrected together, and
the rule that decides each one (`Decisions` in analysis.json).

Every test gives one estimate Δ per subject (contrast, difference), one pooled over subjects
(a contrast with `per_subject: pooled`), one for two subjects (between_subjects) or one
coefficient (model), each with its 1 − alpha interval and a p at the
boundary its direction and margin name. An estimate is *supported* when its interval lies wholly
on the predicted side of the boundary and its adjusted p is below alpha, *not supported* when the
interval lies wholly on the other side, *inconclusive* otherwise (the interval holds the boundary,
the adjusted p is not small enough, or an arm has no scored items). Per subject, `all` is
supported when every subject is and not supported as soon as one is not; `any` the other way
round. A list of tests combines as `all`. The p of every estimate of every tested hypothesis is
one family, corrected with the protocol's `analysis.correction`.

Estimates of rates: a contrast with no margin keeps its contrasts-table numbers (Newcombe
interval, Fisher exact p); any other sum of arm rates has a MOVER-Wilson interval (Newcombe's,
for one difference) and an adjusted Wald z p (linear.py). A pooled contrast keeps its pooled
table's fit (pooled.py: OLS with subject fixed effects, errors clustered by task) with its t
interval and t p at the test's alpha and boundary. Model terms keep the fit's Wald statistics
(log-odds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.analysis.contrasts import adjust
from orchestrator.analysis.decision_text import Scope, component_reason, describe, rule, summary
from orchestrator.analysis.linear import Term, estimate, mover_wilson, z_equivalence, z_two_sided
from orchestrator.analysis.pooled import t_equivalence, t_interval, t_two_sided
from orchestrator.analysis.rates import ALPHA, count
from orchestrator.analysis.result import (
    ArmTerm,
    ContrastResult,
    Correction,
    Decision,
    Decisions,
    HypothesisDecision,
    ModelFit,
    PooledContrast,
    TestComponent,
    TestResult,
)
from orchestrator.protocol.hypotheses import HypothesisTest, term_key
from orchestrator.protocol.schema import Contrast, Protocol
from orchestrator.records import Item, Verdict

ONE_SIDED = {"increase": 1, "no_decrease": 1, "decrease": -1, "no_increase": -1}
"""Which side of the boundary a one-sided direction predicts: +1 above, −1 below."""


@dataclass
class Inputs:
    """What the tests are computed from: the records and the analysis' own results."""

    protocol: Protocol
    items: list[Item]
    verdicts: dict[str, Verdict]
    contrasts: list[ContrastResult]
    models: list[ModelFit]
    pooled: list[PooledContrast] = field(default_factory=list)


def decide_hypotheses(data: Inputs) -> Decisions:
    """Every hypothesis of the protocol, decided by its test (or not tested without one)."""
    protocol = data.protocol
    parts = {h.id: [_test(data, t, h.alpha or ALPHA) for t in h.tests] for h in protocol.hypotheses}
    flat = [c for tests in parts.values() for t in tests for c in t.components]
    method = protocol.analysis.correction
    for c, (p, _) in zip(flat, adjust([c.p for c in flat], method), strict=True):
        c.p_adjusted = p
    out = []
    for h in protocol.hypotheses:
        alpha = h.alpha or ALPHA
        tests = parts[h.id]
        for t in tests:
            for c in t.components:
                c.decision, c.reason = _decide(t, c, alpha)
            t.decision = _combine([c.decision for c in t.components], t.combine or "all")
        decision = _combine([t.decision for t in tests], "all") if tests else "not_tested"
        out.append(
            HypothesisDecision(
                id=h.id,
                text=h.text.strip(),
                decision=decision,
                rule=rule(tests, alpha) if tests else "not tested (no test named)",
                reason=summary(tests, decision, alpha) if tests else "no test named",
                alpha=alpha,
                tests=tests,
            )
        )
    n_tested = sum(1 for tests in parts.values() if tests)
    correction = Correction(
        method=method,
        alpha=ALPHA,
        family=f"every estimate of the {n_tested} tested hypotheses",
        tests=sum(c.p is not None for c in flat),
    )
    return Decisions(correction=correction, hypotheses=out)


def _combine(decisions: list[Decision], how: str) -> Decision:
    """`all`: supported if every one is, not supported if any is; `any`: the other way round."""
    win, lose = ("supported", "not_supported") if how == "all" else ("not_supported", "supported")
    if all(d == win for d in decisions):
        return win
    if any(d == lose for d in decisions):
        return lose
    return "inconclusive"


def _test(data: Inputs, t: HypothesisTest, alpha: float) -> TestResult:
    """The test's estimates, each with its interval and raw p (decided after correction)."""
    p = data.protocol
    subjects = t.subjects or [s.id for s in p.subjects]
    outcome = t.outcome or p.analysis.primary
    contrasts = {c.name: c for c in p.analysis.contrasts}
    combine: Scope = None  # one estimate unless per subject below
    family = "logistic"
    if t.model is not None:
        fit = next(m for m in data.models if m.name == t.model)
        components = [_model_term(fit, t.term or "", alpha)]
        outcome, family = fit.outcome, fit.family
    elif t.between_subjects is not None and len(subjects) < 2:
        # an offline run has one local subject: there is no second one to compare with
        component = _component(" − ".join(subjects), "points", [])
        component.reason = f"needs two subjects; this run has {len(subjects)}"
        components = [component]
    elif t.between_subjects is not None:
        c, (a, b) = contrasts[t.between_subjects], subjects[:2]
        arms = _arms(c, a, 1) + _arms(c, b, -1)
        components = [_rate(data, t, f"{a} − {b}", arms, outcome, alpha)]
    elif t.per_subject == "pooled":
        components = [_pooled(data, t, t.contrast or "", outcome, alpha)]
    else:
        first, *second = [contrasts[n] for n in (t.difference or [t.contrast or ""])]
        combine = t.per_subject if len(subjects) > 1 else None
        components = []
        for s in subjects:
            arms = _arms(first, s, 1) + [a for c in second for a in _arms(c, s, -1)]
            component = _rate(data, t, s, arms, outcome, alpha)
            if not second and _at_zero(t):  # the contrasts table's own numbers
                component.p = _fisher(data.contrasts, first.name, s, outcome)
            components.append(component)
    statistic, prediction, method = describe(t, subjects, family)
    return TestResult(
        kind=t.kind or "contrast",
        statistic=statistic,
        outcome=outcome,
        direction=t.direction,
        margin=t.margin,
        combine=combine,
        prediction=prediction,
        method=method,
        components=components,
        decision="inconclusive",
    )


def _at_zero(t: HypothesisTest) -> bool:
    return t.margin == 0 and t.direction != "equal"


Arm = tuple[int, str, dict[str, str]]
"""(coefficient, subject, levels) of one arm in a sum of rates."""


def _arms(c: Contrast, subject: str, sign: int) -> list[Arm]:
    return [(sign, subject, c.arm(c.treatment)), (-sign, subject, c.arm(c.control))]


def _rate(
    data: Inputs, t: HypothesisTest, label: str, arms: list[Arm], outcome: str, alpha: float
) -> TestComponent:
    """A sum of arm rates: arms with the same items count once (their coefficients added)."""
    merged: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    for coef, subject, levels in arms:
        key = (subject, tuple(sorted(levels.items())))
        merged[key] = merged.get(key, 0) + coef
    rows = []
    for (subject, levels), coef in merged.items():
        if coef == 0:
            continue
        selected = [i for i in data.items if i.subject == subject and _at(i, dict(levels))]
        k, n = count(selected, data.verdicts, outcome)
        rows.append(ArmTerm(coef=coef, subject=subject, levels=dict(levels), k=k, n=n))
    out = _component(label, "points", rows)
    empty = [r for r in rows if r.n == 0]
    if empty:
        where = ", ".join(f"{r.subject} {_levels(r.levels)}" for r in empty)
        out.reason = f"no scored items in {where}"
        return out
    terms = [Term(r.coef, r.k, r.n) for r in rows]
    out.estimate = estimate(terms)
    out.lo, out.hi = mover_wilson(terms, alpha)
    if t.direction == "equal":
        out.p = z_equivalence(terms, t.margin)
    else:
        out.p = z_two_sided(terms, _boundary(t, out.estimate))
    return out


def _pooled(
    data: Inputs, t: HypothesisTest, name: str, outcome: str, alpha: float
) -> TestComponent:
    """The contrast pooled across subjects: its t interval at 1 − alpha, its t p at the
    boundary (TOST for `equal`)."""
    out = _component("pooled", "points", [])
    n = len(data.protocol.subjects)
    if n < 2:  # an offline run has one local subject: there is nothing to pool
        out.reason = f"needs two subjects to pool; this run has {n}"
        return out
    pc = next((c for c in data.pooled if (c.name, c.outcome) == (name, outcome)), None)
    if pc is None or pc.estimate is None:
        out.reason = f"no pooled estimate: {pc.error if pc else 'not computed'}"
        return out
    out.estimate = pc.estimate
    out.lo, out.hi = t_interval(pc, alpha)
    if t.direction == "equal":
        out.p = t_equivalence(pc, t.margin)
    else:
        out.p = t_two_sided(pc, _boundary(t, pc.estimate))
    return out


def _at(item: Item, levels: dict[str, str]) -> bool:
    return all(item.levels.get(f) == lv for f, lv in levels.items())


def _levels(levels: dict[str, str]) -> str:
    return ", ".join(f"{f}={lv}" for f, lv in levels.items())


def _component(label: str, scale: str, arms: list[ArmTerm]) -> TestComponent:
    return TestComponent(
        label=label,
        scale=scale,  # type: ignore[arg-type]
        estimate=None,
        lo=None,
        hi=None,
        p=None,
        p_adjusted=None,
        decision="inconclusive",
        reason="",
        arms=arms,
    )


def _fisher(contrasts: list[ContrastResult], name: str, subject: str, outcome: str) -> float | None:
    for c in contrasts:
        if (c.name, c.subject, c.outcome) == (name, subject, outcome):
            return c.fisher_p
    return None


def _model_term(fit: ModelFit, term: str, alpha: float) -> TestComponent:
    """A coefficient of a fitted model: its Wald interval at 1 − alpha and its Wald p."""
    from scipy.stats import norm

    out = _component(term, "log_odds", [])
    coef = next((c for c in fit.coefficients if term_key(c.term) == term_key(term)), None)
    if coef is None:
        out.reason = f"model {fit.name} not fitted: {fit.error or 'no such coefficient'}"
        return out
    out.label, half = coef.term, float(norm.ppf(1 - alpha / 2)) * coef.se
    out.estimate, out.lo, out.hi, out.p = coef.coef, coef.coef - half, coef.coef + half, coef.p
    return out


def _boundary(t: HypothesisTest, est: float) -> float:
    """The value the test's p is computed at: the margin on the side the direction names (for
    `differ`, the side the estimate is on)."""
    side = ONE_SIDED.get(t.direction)
    if side is None:
        return t.margin if est >= 0 else -t.margin
    return -t.margin if t.direction in ("decrease", "no_decrease") else t.margin


def _side(t: TestResult, lo: float, hi: float) -> str:
    """Where the interval lies: `predicted`, `other` or `across` the boundary."""
    m = t.margin
    side = ONE_SIDED.get(t.direction)
    if side is not None:
        b = -m if t.direction in ("decrease", "no_decrease") else m
        above, below = lo > b, hi < b
        if above or below:
            return "predicted" if (above and side > 0) or (below and side < 0) else "other"
        return "across"
    outside, inside = lo > m or hi < -m, -m < lo and hi < m
    if t.direction == "equal":
        outside, inside = inside, outside
    return "predicted" if outside else ("other" if inside else "across")


def _decide(t: TestResult, c: TestComponent, alpha: float) -> tuple[Decision, str]:
    if c.estimate is None or c.lo is None or c.hi is None:
        return "inconclusive", c.reason
    side = _side(t, c.lo, c.hi)
    significant = c.p_adjusted is not None and c.p_adjusted < alpha
    decision: Decision = "inconclusive"
    if side == "predicted" and significant:
        decision = "supported"
    elif side == "other":
        decision = "not_supported"
    return decision, component_reason(t, c, side, alpha)
