"""Typed results of the judges against human labels: agreement and corrected rates."""

from __future__ import annotations

from pydantic import Field

from orchestrator.analysis.result_base import _CellKey, _Result


class Estimate(_Result):
    """A share among human-labelled items, weighted back to the run's mix of strata (cell × the
    judges' primary verdict), with a Wilson 95% interval at the Kish effective sample size (the
    plain Wilson interval when the weights are equal)."""

    value: float | None = Field(description="The weighted share; None without items.")
    lo: float | None = Field(description="Lower end of the 95% interval.")
    hi: float | None = Field(description="Upper end of the 95% interval.")
    n: int = Field(description="Labelled items in the denominator.")
    n_eff: float | None = Field(description="Their Kish effective sample size, (Σw)² / Σw².")


class Confusion(_Result):
    """Judges against the human on one bool field: labelled items, unweighted."""

    tp: int = Field(description="Both true.")
    fp: int = Field(description="The judges true, the human false.")
    fn: int = Field(description="The judges false, the human true.")
    tn: int = Field(description="Both false.")


class FieldCalibration(_Result):
    """How the judges' verdicts on one field agree with a researcher's labels of the same items."""

    type: str = Field(description="The verdict field's type.")
    n: int = Field(description="Items with both a human label and a scored judges' verdict.")
    agree: float | None = Field(description="Weighted share of those items judged alike.")
    kappa: float | None = Field(
        description="Cohen's kappa, judges against the human, over the weighted table "
        "(unweighted across categories); None with a single category."
    )
    sensitivity: Estimate | None = Field(
        description="bool fields: share judged true among items the human labelled true."
    )
    specificity: Estimate | None = Field(
        description="bool fields: share judged false among items the human labelled false."
    )
    confusion: Confusion | None = Field(description="bool fields: the unweighted 2 × 2 table.")


class CorrectedRate(_CellKey):
    """An outcome's rate in one cell, corrected for the judges' error (Rogan–Gladen)."""

    outcome: str = Field(description="The outcome (a bool verdict field).")
    n: int = Field(description="Scored items in the cell.")
    raw: float | None = Field(description="The judges' rate, k / n.")
    corrected: float | None = Field(
        description="(raw + Sp − 1) / (Se + Sp − 1), clipped to [0, 1]; None when not estimable."
    )
    lo: float | None = Field(description="Lower end of the delta-method 95% interval.")
    hi: float | None = Field(description="Upper end of the delta-method 95% interval.")
    clipped: bool = Field(description="Whether the unclipped estimate fell outside [0, 1].")
    error: str | None = Field(description="Why there is no corrected rate, in words.")


class Calibration(_Result):
    """The judges against a researcher's labels (`research label`), per field, and the
    outcomes' rates corrected for the judges' error where a field has labels."""

    items: int = Field(description="Items with at least one human label (skips aside).")
    labels: int = Field(description="Field values labelled (skips aside).")
    by: list[str] = Field(description="Who labelled.")
    strata: int = Field(description="Strata (cell × the judges' primary verdict) in the run.")
    strata_labelled: int = Field(description="Of them, strata with a labelled item.")
    fields: dict[str, FieldCalibration] = Field(description="By verdict field, schema order.")
    corrected: list[CorrectedRate] = Field(
        description="Per outcome with labels, per cell in design order."
    )
