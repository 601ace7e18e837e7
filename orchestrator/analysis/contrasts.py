"""The protocol's contrasts: a difference of two rates with its Newcombe interval and Fisher's
exact p, then the p-values corrected for multiple comparisons, each outcome one family."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from orchestrator.analysis.rates import ALPHA, count, rate
from orchestrator.analysis.result import ArmRate, ContrastResult, Correction
from orchestrator.protocol.schema import Contrast, Protocol
from orchestrator.records import Item, Verdict


def arm_items(items: list[Item], c: Contrast, subject: str, level: str) -> list[Item]:
    """The items of one arm of a contrast: this subject, the factor at `level`, `within` held."""
    return [
        i
        for i in items
        if i.subject == subject
        and i.levels.get(c.factor) == level
        and all(i.levels.get(f) == lv for f, lv in c.within.items())
    ]


def contrast(
    c: Contrast,
    subject: str,
    outcome: str,
    items: list[Item],
    verdicts: dict[str, Verdict],
    *,
    named: bool = True,
) -> ContrastResult:
    """Treatment minus control on `outcome` for one subject (not yet corrected); `named`: the
    contrast is named for this outcome."""
    kt, nt = count(arm_items(items, c, subject, c.treatment), verdicts, outcome)
    kc, nc = count(arm_items(items, c, subject, c.control), verdicts, outcome)
    out = ContrastResult(
        name=c.name,
        subject=subject,
        outcome=outcome,
        treatment=ArmRate(level=c.treatment, **rate(kt, nt).model_dump()),
        control=ArmRate(level=c.control, **rate(kc, nc).model_dump()),
        diff=None,
        lo=None,
        hi=None,
        fisher_p=None,
        named=named,
    )
    if nt and nc:
        from scipy.stats import fisher_exact
        from statsmodels.stats.proportion import confint_proportions_2indep

        lo, hi = confint_proportions_2indep(kt, nt, kc, nc, method="newcomb", compare="diff")
        _, p = fisher_exact([[kt, nt - kt], [kc, nc - kc]])
        out.diff, out.lo, out.hi = kt / nt - kc / nc, float(lo), float(hi)
        out.fisher_p = float(p)
    return out


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


def correct(contrasts: list[ContrastResult], protocol: Protocol) -> Correction:
    """Set `p_adjusted` and `rejected` on each contrast; each outcome's tests are one family. A
    contrast of a level with itself (validate refuses one; a protocol built in code may not)
    tests nothing and is never counted in a family."""
    method = protocol.analysis.correction
    families: dict[str, list[ContrastResult]] = defaultdict(list)
    for c in contrasts:
        if c.treatment.level != c.control.level:
            families[c.outcome].append(c)
    for family in families.values():
        adjusted = adjust([c.fisher_p for c in family], method)
        for c, (p, rejected) in zip(family, adjusted, strict=True):
            c.p_adjusted, c.rejected = p, rejected
    tests = max((sum(c.fisher_p is not None for c in f) for f in families.values()), default=0)
    n_c = sum(1 for c in protocol.analysis.contrasts if c.treatment != c.control)
    n_s = len(protocol.subjects)
    contrasts_text = f"{n_c} contrast{'s' * (n_c != 1)}"
    subjects_text = f"{n_s} subject{'s' * (n_s != 1)}"
    return Correction(
        method=method,
        alpha=ALPHA,
        family=f"each outcome's {contrasts_text} × {subjects_text}",
        tests=tests,
    )
