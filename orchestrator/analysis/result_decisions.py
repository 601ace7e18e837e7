"""Typed results of the hypotheses decided by their pre-registered tests."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from orchestrator.analysis.result_base import Correction, _Result

Decision = Literal["supported", "not_supported", "inconclusive"]


class ArmTerm(_Result):
    """One arm's rate in a sum of arm rates (a contrast is +treatment −control)."""

    coef: int = Field(description="Its coefficient in the sum: +1, −1 (+2 if it counts twice).")
    subject: str = Field(description="Subject id.")
    levels: dict[str, str] = Field(description="The levels that select the arm's items.")
    k: int = Field(description="Items judged positive.")
    n: int = Field(description="Scored items.")


class TestComponent(_Result):
    """One estimate a test is decided on: a subject's effect, one subject's effect minus
    another's, or a model's coefficient."""

    label: str = Field(description="Whose estimate: a subject, `a − b`, or the model term.")
    scale: Literal["points", "log_odds"] = Field(
        description="points: a difference of rates (shares; 0.10 is 10 points); log_odds: a "
        "regression coefficient."
    )
    estimate: float | None = Field(description="Δ; None when an arm has no scored items.")
    lo: float | None = Field(description="Lower end of its 1 − alpha interval.")
    hi: float | None = Field(description="Upper end of its 1 − alpha interval.")
    p: float | None = Field(description="p of the test at the boundary (see the test's method).")
    p_adjusted: float | None = Field(description="p corrected over every hypothesis test.")
    decision: Decision = Field(description="What the rule makes of this estimate.")
    reason: str = Field(description="Why, in words: where the interval lies, and the p.")
    arms: list[ArmTerm] = Field(description="The arm rates summed (empty for a model term).")


class TestResult(_Result):
    """One pre-registered test of a hypothesis (protocol `HypothesisTest`), decided."""

    kind: Literal["contrast", "difference", "between_subjects", "model"] = Field(
        description="Which statistic the test names."
    )
    statistic: str = Field(description="The statistic, e.g. `a − b` for a difference.")
    outcome: str = Field(description="The outcome it is computed on.")
    direction: str = Field(description="The predicted direction (protocol `direction`).")
    margin: float = Field(description="The margin, as a share of items (0: none).")
    combine: Literal["all", "any"] | None = Field(
        description="Per-subject tests: every subject must show it, or one; None for one estimate."
    )
    prediction: str = Field(description="What is predicted of the estimate, in symbols.")
    method: str = Field(description="How the interval and p were computed.")
    components: list[TestComponent] = Field(description="One per subject (or one).")
    decision: Decision = Field(description="The components combined (see `combine`).")


class HypothesisDecision(_Result):
    """A hypothesis and what its pre-registered test decided."""

    id: str = Field(description="The hypothesis' id.")
    text: str = Field(description="The prediction as the protocol states it.")
    decision: Decision | Literal["not_tested"] = Field(
        description="supported, not_supported or inconclusive; not_tested without a test."
    )
    rule: str = Field(description="The decision rule, in words, as fixed before the data.")
    reason: str = Field(description="What decided it: which estimates, where their intervals lie.")
    alpha: float = Field(description="The level the adjusted p is compared with.")
    tests: list[TestResult] = Field(description="Its test's parts (empty when not tested).")


class Decisions(_Result):
    """The hypotheses decided, with the correction over their tests."""

    correction: Correction = Field(
        description="How the p of every estimate of every tested hypothesis was corrected."
    )
    hypotheses: list[HypothesisDecision] = Field(description="In the protocol's order.")
