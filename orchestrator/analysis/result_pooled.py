"""Typed results of the contrasts pooled across subjects: one estimate per contrast and outcome
from every subject's items, with subject fixed effects and errors clustered by task."""

from __future__ import annotations

from pydantic import Field

from orchestrator.analysis.result_base import ArmRate, _Result


class PooledSubject(_Result):
    """One subject's share of a pooled contrast: its own arms and how much it weighs."""

    subject: str = Field(description="Subject id.")
    k_treatment: int = Field(description="Treatment-arm items judged positive.")
    n_treatment: int = Field(description="Scored treatment-arm items.")
    k_control: int = Field(description="Control-arm items judged positive.")
    n_control: int = Field(description="Scored control-arm items.")
    diff: float | None = Field(
        description="This subject's own treatment rate minus control rate; None without items "
        "in both arms."
    )
    weight: float = Field(
        description="Its share of the pooled estimate: n_t·n_c/(n_t + n_c) of its arms over the "
        "sum of the same over subjects (the weights OLS with subject fixed effects gives each "
        "subject's difference; the estimate is Σ weight·diff). 0 without items in both arms."
    )


class PooledContrast(_Result):
    """A protocol contrast on one outcome, pooled over every subject's items of its two arms.

    The estimate is the coefficient of `arm` (1 = treatment, 0 = control) in the linear
    probability model `y ~ arm + C(subject)` fitted by OLS to the scored items (y = 1 when the
    outcome is true): subject fixed effects make it a within-subject difference of rates,
    averaged over subjects with the weights in `subjects`, so subjects' different base rates do
    not enter it even when their arms are unbalanced. Items of one task are correlated (a task
    is crossed with the design), so the standard error is clustered by task (statsmodels
    `cov_type="cluster"`), and the interval and p use Student's t with tasks − 1 degrees of
    freedom.
    """

    name: str = Field(description="The contrast's name in the protocol.")
    outcome: str = Field(description="Outcome compared.")
    named: bool = Field(
        description="Whether the contrast is named for this outcome (as `ContrastResult.named`)."
    )
    treatment: ArmRate = Field(
        description="Every subject's treatment-arm items together: k/n with a Wilson interval "
        "(a plain pooled rate; its difference from the control's is not the estimate when "
        "subjects' arms are unbalanced)."
    )
    control: ArmRate = Field(description="Every subject's control-arm items together, likewise.")
    estimate: float | None = Field(
        description="The treatment coefficient of `y ~ arm + C(subject)` (OLS): the pooled "
        "within-subject difference treatment − control, as a share; None with `error`."
    )
    se: float | None = Field(description="Its standard error, clustered by task.")
    df: int | None = Field(description="Degrees of freedom of its t tests: tasks − 1.")
    lo: float | None = Field(description="Lower end of its 95% t interval.")
    hi: float | None = Field(description="Upper end of its 95% t interval.")
    p: float | None = Field(description="Two-sided p of estimate = 0 (cluster-robust t test).")
    p_adjusted: float | None = Field(
        default=None,
        description="p corrected within this outcome's pooled contrasts (a family apart from "
        "the per-subject contrasts), by the protocol's `analysis.correction`.",
    )
    rejected: bool | None = Field(
        default=None, description="Whether p_adjusted is at or below alpha."
    )
    n: int = Field(description="Scored items of both arms, all subjects.")
    tasks: int = Field(description="Tasks among them: the clusters.")
    subjects: list[PooledSubject] = Field(description="Each subject's arms and weight.")
    error: str | None = Field(description="Why there is no estimate, in words.")

    @property
    def label(self) -> str:
        """The contrast's name for an outcome it is named for, `name · outcome` otherwise."""
        return self.name if self.named else f"{self.name} · {self.outcome}"
