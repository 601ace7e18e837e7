"""Hypotheses and the pre-registered test that decides each one.

A test names one statistic the analysis already computes (a contrast, the difference of two
contrasts, one contrast's effect in one subject against another, or a regression model's
term), the outcome, the predicted direction and an optional margin. `checks/hypotheses.py`
checks that what it names exists; `analysis/decisions.py` decides it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag

from orchestrator.protocol.base import KEY, SLUG, Strict

Direction = Literal["increase", "decrease", "differ", "equal", "no_increase", "no_decrease"]
"""What the test predicts of the estimate Δ with margin m (m ≥ 0): increase Δ > m, decrease
Δ < −m, differ |Δ| > m, equal |Δ| < m, no_increase Δ < m, no_decrease Δ > −m."""

KINDS = ("contrast", "difference", "between_subjects", "model")
"""The keys that name a test's statistic; a test names exactly one."""


class HypothesisTest(Strict):
    """The statistic a hypothesis predicts something of, and what it predicts."""

    contrast: str | None = Field(
        None,
        description="A contrast of analysis.contrasts: its difference (treatment − control), "
        "per subject.",
    )
    difference: list[str] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="Two contrasts [a, b]: a's difference minus b's, per subject (a difference "
        "of differences, e.g. a false-alarm effect minus a detection effect).",
    )
    between_subjects: str | None = Field(
        None,
        description="A contrast whose difference in the first of `subjects` minus the second "
        "is tested (does an effect differ between models).",
    )
    model: str | None = Field(
        None, description="A model of analysis.models; its coefficient `term` is tested."
    )
    term: str | None = Field(
        None,
        description="With `model`: the coefficient as the report names it, e.g. "
        "`framing[deu]:subject[claude-haiku]` (log-odds).",
    )
    outcome: str | None = Field(
        None, description="The outcome compared; default the primary (a model: its own)."
    )
    direction: Direction = Field(
        description="What is predicted of the estimate Δ: increase (Δ > margin), decrease "
        "(Δ < −margin), differ (|Δ| > margin), equal (|Δ| < margin, margin > 0), no_increase "
        "(Δ < margin), no_decrease (Δ > −margin)."
    )
    margin: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="A rate difference, as a share (0.10: 10 percentage points), that the "
        "effect must pass; 0 for none. Not for model terms (log-odds).",
    )
    per_subject: Literal["all", "any", "pooled"] = Field(
        "all",
        description="contrast and difference tests run per subject: the hypothesis needs it "
        "in every subject (`all`) or in at least one (`any`). `pooled` (contrast tests only, "
        "two or more subjects) decides it on one estimate over every subject's items instead: "
        "the contrast's pooled difference (OLS `y ~ arm + C(subject)`, errors clustered by "
        "task), as in the report's table of pooled contrasts.",
    )
    subjects: list[Annotated[str, Field(pattern=KEY)]] | None = Field(
        None,
        description="Subjects tested (default all); for between_subjects the two compared, "
        "first minus second (default the protocol's two subjects).",
    )

    @property
    def kind(self) -> str | None:
        """Which statistic the test names (None when it names none, or several)."""
        named = [k for k in KINDS if getattr(self, k) is not None]
        return named[0] if len(named) == 1 else None


def _test_form(value: object) -> str:
    return "all" if isinstance(value, list) else "one"


TestForm = Annotated[
    Annotated[HypothesisTest, Tag("one")]
    | Annotated[list[HypothesisTest], Field(min_length=1), Tag("all")],
    Discriminator(_test_form),
]
"""One test, or a list of tests that must all hold (a prediction with several parts)."""


class Hypothesis(Strict):
    id: str = Field(pattern=SLUG, description="Short label, e.g. H1.")
    text: str = Field(min_length=1, description="The prediction, stated so that it can fail.")
    test: TestForm | None = Field(
        None,
        description="The pre-registered test that decides it (a list: parts that must all "
        "hold); without one the report shows it as not tested.",
    )
    alpha: float | None = Field(
        None,
        gt=0.0,
        lt=0.5,
        description="Level of the test: the adjusted p must be below it, and its intervals are "
        "1 − alpha intervals; default the analysis' level (0.05).",
    )

    @property
    def tests(self) -> list[HypothesisTest]:
        """The test's parts, in order (empty without a test)."""
        if self.test is None:
            return []
        return list(self.test) if isinstance(self.test, list) else [self.test]


def term_key(term: str) -> frozenset[tuple[str, str]]:
    """A coefficient's name as a set of (factor, level): `a[T.x]:b[y]` and `b[y]:a[x]` alike."""
    parts = set()
    for part in term.split(":"):
        name, _, rest = part.partition("[")
        level = rest.removesuffix("]").removeprefix("T.")
        parts.add((name.strip(), level))
    return frozenset(parts)
