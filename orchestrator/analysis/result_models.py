"""The typed results of the pre-registered regression models (`ModelFit` in analysis.json): their
coefficients, an ordinal model's thresholds, and the joint test of every term."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from orchestrator.analysis.result_base import _Result


class Coefficient(_Result):
    """One coefficient of a regression: log-odds (logistic) or log cumulative odds of a higher
    level (ordinal)."""

    term: str = Field(description="Term as the report names it, e.g. `framing[deu]`.")
    coef: float = Field(description="Estimate (log-odds, or log cumulative odds).")
    se: float = Field(description="Standard error (clustered when the model says so).")
    z: float = Field(description="Wald z.")
    p: float = Field(description="Two-sided Wald p.")
    lo: float = Field(description="Lower end of the 95% interval (log-odds).")
    hi: float = Field(description="Upper end of the 95% interval (log-odds).")
    odds_ratio: float = Field(description="exp(coef).")

    @property
    def or_lo(self) -> float:
        """Lower end of the odds ratio's interval (capped where exp would overflow)."""
        return math.exp(min(self.lo, 700.0))

    @property
    def or_hi(self) -> float:
        """Upper end of the odds ratio's interval (capped where exp would overflow)."""
        return math.exp(min(self.hi, 700.0))


class Threshold(_Result):
    """A cut point of an ordinal model: where, on the latent log-odds scale, the outcome passes
    from `below` to `above` (at the reference levels, P(outcome ≤ below) = logistic(value))."""

    below: str = Field(description="The outcome level below the cut.")
    above: str = Field(description="The next level up.")
    value: float = Field(description="The cut point (log cumulative odds at the reference).")


class TermTest(_Result):
    """The joint test that every coefficient of one term of the crossing is zero: a main
    effect (`pressure`) or an interaction (`pressure:expertise`), however many levels it has."""

    term: str = Field(description="The term: factors joined by `:`, e.g. `pressure:subject`.")
    df: int = Field(description="Degrees of freedom: the term's number of coefficients.")
    wald_chi2: float | None = Field(
        description="Joint Wald χ² of the term's coefficients, with the model's own covariance "
        "(cluster-robust when errors are clustered); None when it could not be computed."
    )
    wald_p: float | None = Field(description="p of wald_chi2 on df degrees of freedom.")
    lr_chi2: float | None = Field(
        description="Likelihood-ratio χ²: twice the log-likelihood lost when the model is "
        "refitted without the term's columns. It uses the model likelihood, so it is not "
        "cluster-robust; None when the refit failed (see error)."
    )
    lr_p: float | None = Field(description="p of lr_chi2 on df degrees of freedom.")
    error: str | None = Field(
        default=None, description="Why a statistic of this test is missing, in words."
    )

    @property
    def text(self) -> str:
        """The test in words: `Wald χ²(2) = 5.31, p = 0.0703; LR χ²(2) = 6.02, p = 0.0493`."""
        parts = []
        if self.wald_chi2 is not None and self.wald_p is not None:
            parts.append(f"Wald χ²({self.df}) = {self.wald_chi2:.2f}, p = {self.wald_p:.3g}")
        if self.lr_chi2 is not None and self.lr_p is not None:
            parts.append(f"LR χ²({self.df}) = {self.lr_chi2:.2f}, p = {self.lr_p:.3g}")
        if self.error:
            parts.append(self.error)
        return "; ".join(parts)


class ModelFit(_Result):
    """A pre-registered regression (logistic for a bool outcome, ordinal logistic for an
    ordinal one), fitted or with the reason it could not be."""

    name: str = Field(description="The model's name in the protocol.")
    outcome: str = Field(description="The outcome regressed.")
    family: Literal["logistic", "ordinal"] = Field(
        default="logistic",
        description="logistic: log-odds of a true outcome, with an intercept. ordinal: "
        "proportional-odds logistic regression (statsmodels OrderedModel), coefficients in log "
        "cumulative odds of a higher level, thresholds in place of the intercept.",
    )
    levels: list[str] = Field(
        default_factory=list,
        description="An ordinal outcome's levels in the fit, lowest first (a level no item took "
        "has no threshold and is left out); empty for a logistic model.",
    )
    formula: str = Field(description="The patsy formula fitted.")
    terms: list[str] = Field(description="Factors crossed (treatment coding).")
    within: dict[str, str] = Field(description="Levels the items were restricted to.")
    n: int = Field(description="Scored items in the fit.")
    clusters: int | None = Field(description="Tasks, when errors are clustered by task.")
    cluster: str = Field(description="How errors are clustered: `task` or `none`.")
    coefficients: list[Coefficient] = Field(description="Empty when the model is not fitted.")
    thresholds: list[Threshold] = Field(
        default_factory=list, description="An ordinal model's cut points, lowest first."
    )
    interaction: str | None = Field(
        description="The highest-order interaction's coefficient, when that term has exactly "
        "one (a 2-level × 2-level design); see interaction_term and tests for any other."
    )
    interaction_term: str | None = Field(
        default=None,
        description="The highest-order interaction term, e.g. `pressure:expertise`, whenever "
        "the model crosses two or more terms (its joint test is in tests).",
    )
    tests: list[TermTest] = Field(
        default_factory=list,
        description="The joint test of each term of the crossing: main effects, then two-way "
        "interactions, ...; empty when the model is not fitted.",
    )
    reference: dict[str, str] = Field(description="Reference level of each term.")
    error: str | None = Field(description="Why the model has no estimates, in words.")

    @property
    def top_test(self) -> TermTest | None:
        """The joint test of the highest-order term (the interaction, given two or more terms;
        the one term otherwise), if fitted."""
        return self.tests[-1] if self.tests else None

    @property
    def interaction_coefficient(self) -> Coefficient | None:
        """The 1-df interaction's coefficient, if the model has one."""
        return next((c for c in self.coefficients if c.term == self.interaction), None)

    @property
    def scale(self) -> str:
        """What the coefficients measure, in words."""
        return "log-odds" if self.family == "logistic" else "log cumulative odds"
