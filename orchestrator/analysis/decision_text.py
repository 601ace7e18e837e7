"""The hypotheses' decisions in words: what a test predicts, the rule that decides it, and why it
came out as it did. The words are stored in analysis.json, so the report, SUMMARY.md and the
checkpoint say the same thing."""

from __future__ import annotations

from typing import Literal

from orchestrator.analysis.result import (
    Decision,
    HypothesisDecision,
    TestComponent,
    TestResult,
)
from orchestrator.protocol.hypotheses import HypothesisTest

Scope = Literal["all", "any"] | None

NEWCOMBE = "Newcombe interval"
MOVER = "MOVER-Wilson interval (Newcombe's, for a sum of independent rates)"


def describe(
    t: HypothesisTest, subjects: list[str], family: str = "logistic"
) -> tuple[str, str, str]:
    """(statistic, prediction, method) of a test, in the report's symbols; `family` is the
    regression's, for a model term."""
    if t.model is not None:
        statistic = f"{t.model}: {t.term}"
        method = "Wald interval and p of the fitted coefficient (log-odds)"
        if family == "ordinal":
            method = (
                "Wald interval and p of the fitted coefficient (ordinal logistic: log "
                "cumulative odds of a higher level)"
            )
        return statistic, _prediction(t.direction, t.margin, "log_odds"), method
    if t.between_subjects is not None:
        pair = " − ".join(subjects[:2])  # one subject (offline): nothing to compare with
        statistic, interval = f"{t.between_subjects}: {pair}", MOVER
    elif t.difference is not None:
        statistic, interval = " − ".join(t.difference), MOVER
    elif t.per_subject == "pooled":
        statistic = f"{t.contrast}, pooled over subjects"
        fit = "OLS y ~ arm + C(subject), errors clustered by task"
        if t.direction == "equal":
            test = "TOST p (two one-sided cluster-robust t tests at ±margin)"
        else:
            test = "cluster-robust t p" + (" at the margin" if t.margin else "")
        method = f"{fit}: t interval (tasks − 1 df), {test}"
        return statistic, _prediction(t.direction, t.margin, "points"), method
    else:
        statistic, interval = t.contrast or "", NEWCOMBE
    if t.direction == "equal":
        test = "TOST p (two one-sided adjusted Wald z tests at ±margin)"
    elif t.margin:
        test = "adjusted Wald z p at the margin"
    elif t.contrast is not None:
        test = "Fisher exact p (as in the contrasts table)"
    else:
        test = "adjusted Wald z p"
    return statistic, _prediction(t.direction, t.margin, "points"), f"{interval}, {test}"


def _prediction(direction: str, m: float, scale: str) -> str:
    margin = _amount(m, scale)
    return {
        "increase": f"Δ > {_signed(m, scale)}",
        "decrease": f"Δ < {_signed(-m, scale)}",
        "no_increase": f"Δ < {_signed(m, scale)}",
        "no_decrease": f"Δ > {_signed(-m, scale)}",
        "differ": f"|Δ| > {margin}",
        "equal": f"|Δ| < {margin}",
    }[direction]


def _amount(x: float, scale: str) -> str:
    if scale == "log_odds":
        return f"{x:g}"
    return "0" if x == 0 else f"{100 * x:g} points"


def _signed(x: float, scale: str) -> str:
    return "0" if x == 0 else ("+" if x > 0 else "−") + _amount(abs(x), scale)


def regions(t: TestResult) -> dict[str, str]:
    """Where an interval can lie, in words: on the `predicted` side, the `other`, or `across`."""
    scale = "log_odds" if t.kind == "model" else "points"
    if t.direction in ("differ", "equal"):
        band = f"±{_amount(t.margin, scale)}" if t.margin else "0"
        out = {"outside": f"lies outside {band}", "inside": f"lies inside {band}"}
        if not t.margin:
            out["outside"] = "excludes 0"
        predicted, other = ("outside", "inside")[:: 1 if t.direction == "differ" else -1]
        return {"predicted": out[predicted], "other": out[other], "across": f"reaches {band}"}
    b = t.margin if t.direction in ("increase", "no_increase") else -t.margin
    above, below = f"lies above {_signed(b, scale)}", f"lies below {_signed(b, scale)}"
    up = t.direction in ("increase", "no_decrease")
    return {
        "predicted": above if up else below,
        "other": below if up else above,
        "across": f"contains {_signed(b, scale)}",
    }


def component_reason(t: TestResult, c: TestComponent, side: str, alpha: float) -> str:
    """Why one estimate was decided as it was: where its interval lies, and its adjusted p."""
    where = f"interval {regions(t)[side]}"
    if side != "predicted":
        return where
    if c.p_adjusted is None:
        return f"{where} but has no p"
    if c.p_adjusted < alpha:
        return f"{where}, adj. p {_p(c.p_adjusted)}"
    return f"{where} but adj. p {_p(c.p_adjusted)} is not below {alpha:g}"


def interval_text(c: TestComponent) -> str:
    """`+48.0 [+30.2, +62.1]`: points for rates, log-odds for model terms."""

    def num(x: float | None) -> str:
        if x is None:
            return "—"
        return f"{100 * x:+.1f}" if c.scale == "points" else f"{x:+.2f}"

    return f"{num(c.estimate)} [{num(c.lo)}, {num(c.hi)}]"


def _p(x: float) -> str:
    return "<0.001" if x < 0.001 else f"{x:.3f}"


SCOPES = {
    None: ("", ""),
    "all": ("for every subject ", "for any subject "),
    "any": ("for at least one subject ", "for every subject "),
}
"""How a per-subject test's rule reads: (supported if ..., not supported if ...)."""


def rule(tests: list[TestResult], alpha: float) -> str:
    """The decision rule of a hypothesis, in words."""
    level = f"{100 * (1 - alpha):g}%"
    if len(tests) > 1:
        return (
            f"supported if every part is (each {level} interval on its predicted side, adj. "
            f"p < {alpha:g}); not supported if any part's interval lies on the other side; "
            "otherwise inconclusive"
        )
    [t] = tests
    yes, no = SCOPES[t.combine]
    r = regions(t)
    text = f"supported if {yes}the {level} interval {r['predicted']} and adj. p < {alpha:g}; "
    if t.direction == "differ" and not t.margin:
        return text + "otherwise inconclusive (without a margin, no interval shows no difference)"
    return text + f"not supported if {no}it {r['other']}; otherwise inconclusive"


def summary(tests: list[TestResult], decision: Decision, alpha: float) -> str:
    """What decided the hypothesis: the estimates that made its decision, with their reasons."""
    components = [c for t in tests for c in t.components]
    if len(components) > 1 and all(c.decision == "supported" for c in components):
        largest = max(c.p_adjusted or 0.0 for c in components)
        return (
            f"all {len(components)} intervals lie on their predicted side, adj. p < {alpha:g} "
            f"(largest {_p(largest)})"
        )
    lines = []
    for n, t in enumerate(tests, 1):
        if len(tests) > 1 and t.decision != decision:
            continue
        deciding = [c for c in t.components if c.decision == t.decision] or t.components
        prefix = f"({n}) " if len(tests) > 1 else ""
        for c in deciding:
            label = f"{c.label}: " if len(t.components) > 1 else ""
            lines.append(f"{prefix}{label}{c.reason}")
    return "; ".join(lines)


def short(text: str, limit: int = 90) -> str:
    """A hypothesis' text cut at a word near `limit` characters, for a table cell."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"


def decision_word(decision: str) -> str:
    return decision.replace("_", " ")


def headline(h: HypothesisDecision) -> str:
    """One line for SUMMARY.md, LOG.md and the final checkpoint: the decision, the estimates and
    what decided it."""
    if not h.tests:
        return "not tested (no test named)"
    parts = []
    for t in h.tests:
        estimates = ", ".join(f"{c.label} {interval_text(c)}" for c in t.components)
        parts.append(f"{t.statistic} on {t.outcome}, {t.prediction}: {estimates}")
    return f"{decision_word(h.decision)} — {'; '.join(parts)} ({h.reason})"
