"""The typed result of the analysis (`AnalysisResult`, artifacts/analysis.json) and of the
agreement statistics (`Agreement`, artifacts/agreement.json), and how both are read and written.

Field order is the key order on disk. Rates are shares in [0, 1]; a statistic that cannot be
computed (an empty arm, a single category) is None, never 0. Non-finite floats are written as
JSON's NaN/Infinity constants, as json.dumps did before the result had a type, so a file written
by either reads back.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from memory import write_atomic

SCHEMA_VERSION = 2
"""Bumped whenever a field changes meaning or goes away (adding an optional one does not).
2: probe validity (`ProbeSummary.validity`, `readout_transfer`); version 1 files still read."""


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


class Rate(_Result):
    """k positives of n scored items, with a Wilson 95% interval (None without items)."""

    n: int = Field(description="Scored items (unscored ones are left out).")
    k: int = Field(description="Items judged positive.")
    rate: float | None = Field(description="k / n; None when n is 0.")
    lo: float | None = Field(description="Lower end of the Wilson 95% interval.")
    hi: float | None = Field(description="Upper end of the Wilson 95% interval.")


class CellRate(Rate):
    """One outcome's rate in one cell, with the cell's unscored items beside it."""

    unscored: int = Field(description="Items of the cell without a scored verdict.")


class _Level(_Result):
    level: str = Field(description="The contrast factor's level in this arm.")


class ArmRate(Rate, _Level):
    """One arm of a contrast: its level and the outcome's rate among its scored items."""


class _CellKey(_Result):
    cell: str = Field(description="Cell key, e.g. `claude.deu.planted`.")
    subject: str = Field(description="The subject model's id in the protocol.")
    levels: dict[str, str] = Field(description="Each design factor's level in this cell.")


class Cell(_CellKey):
    """Per-cell counts: every outcome's rate, enum verdict tallies, screening flags."""

    items: int = Field(description="Items in the cell, scored or not.")
    outcomes: dict[str, CellRate] = Field(description="Rate of each outcome, by name.")
    enums: dict[str, dict[str, int]] = Field(
        description="For each enum verdict field, how many scored items took each value."
    )
    screen: dict[str, int] = Field(description="Screening flags raised in the cell, by kind.")


class ContrastResult(_Result):
    """A pre-registered contrast (protocol `Contrast`) for one subject and outcome."""

    name: str = Field(description="The contrast's name in the protocol.")
    subject: str = Field(description="Subject id.")
    outcome: str = Field(description="Outcome compared.")
    treatment: ArmRate = Field(description="The treatment arm.")
    control: ArmRate = Field(description="The control arm.")
    diff: float | None = Field(description="Treatment rate minus control rate.")
    lo: float | None = Field(description="Lower end of the Newcombe 95% interval of diff.")
    hi: float | None = Field(description="Upper end of the Newcombe 95% interval of diff.")
    fisher_p: float | None = Field(description="Two-sided Fisher exact p; None without a test.")
    p_adjusted: float | None = Field(
        default=None, description="p corrected within the outcome's family (see Correction)."
    )
    rejected: bool | None = Field(
        default=None, description="Whether p_adjusted is at or below alpha."
    )


class Correction(_Result):
    """How the contrasts' p-values were corrected for multiple comparisons."""

    method: str = Field(description="statsmodels multipletests method, or `none`.")
    alpha: float = Field(description="Level of the corrected tests.")
    family: str = Field(description="What one family of tests is, in words.")
    tests: int = Field(description="Tests in the largest family.")


class Coefficient(_Result):
    """One coefficient of a logistic regression, on the log-odds scale."""

    term: str = Field(description="Term as the report names it, e.g. `framing[deu]`.")
    coef: float = Field(description="Estimate (log-odds).")
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


class ModelFit(_Result):
    """A pre-registered logistic regression, fitted or with the reason it could not be."""

    name: str = Field(description="The model's name in the protocol.")
    outcome: str = Field(description="The outcome regressed.")
    formula: str = Field(description="The patsy formula fitted.")
    terms: list[str] = Field(description="Factors crossed (treatment coding).")
    within: dict[str, str] = Field(description="Levels the items were restricted to.")
    n: int = Field(description="Scored items in the fit.")
    clusters: int | None = Field(description="Tasks, when errors are clustered by task.")
    cluster: str = Field(description="How errors are clustered: `task` or `none`.")
    coefficients: list[Coefficient] = Field(description="Empty when the model is not fitted.")
    interaction: str | None = Field(description="The highest-order interaction term, if one.")
    reference: dict[str, str] = Field(description="Reference level of each term.")
    error: str | None = Field(description="Why the model has no estimates, in words.")


class FalseAlarm(Rate, _CellKey):
    """The primary outcome's rate in a cell where nothing was planted."""


class Bounds(_Result):
    """A rate as observed and if every unscored item were negative (low) or positive (high)."""

    observed: float | None = Field(description="k / n among scored items.")
    low: float | None = Field(description="k / (n + unscored).")
    high: float | None = Field(description="(k + unscored) / (n + unscored).")


class Missing(_CellKey):
    """Unscored items of one cell, why, and how far they could move each rate."""

    items: int = Field(description="Items in the cell.")
    scored: int = Field(description="Items with a scored verdict.")
    unscored: int = Field(description="Items without one.")
    reasons: dict[str, int] = Field(description="Unscored items by reason.")
    bounds: dict[str, Bounds] = Field(description="Bounds on each outcome's rate.")


class ProbeStat(_Result):
    """Mean, sd and count of one probe metric in one cell."""

    mean: float = Field(description="Mean over the cell's readouts.")
    sd: float | None = Field(description="Sample sd; None with a single readout.")
    n: int = Field(description="Readouts.")


class Association(_Result):
    """How well one probe metric separates items judged positive from negative."""

    metric: str = Field(description="Metric name, `probe.metric`.")
    outcome: str = Field(description="The verdict field it is compared with.")
    n: int = Field(description="Items with a finite value and a verdict.")
    n_pos: int = Field(description="Of them judged positive.")
    n_neg: int = Field(description="Of them judged negative.")
    auroc: float | None = Field(description="Mann-Whitney U / (n_pos * n_neg).")
    p: float | None = Field(description="Two-sided Mann-Whitney p, uncorrected.")
    mean_pos: float | None = Field(description="Mean among positives.")
    mean_neg: float | None = Field(description="Mean among negatives.")


class ProbeTransfer(_Result):
    """A trained probe on its out-of-distribution (transfer) set, beside the same baselines."""

    set: str = Field(
        description="The set's file, relative to the protocol (`probes.train.*.transfer`)."
    )
    n_pos: int = Field(description="Examples with the positive label.")
    n_neg: int = Field(description="Examples with the negative label.")
    auroc: float = Field(description="The probe's AUROC on the set.")
    bow_auroc: float = Field(description="The bag of words fitted on the train split, on the set.")
    random_auroc: float | None = Field(
        description="The random-weight control's probe on the set; None without the control."
    )
    threshold: float = Field(description="The probe's 1%-FPR threshold, set on its test split.")
    false_positives: int = Field(description="The set's negatives above the threshold.")
    fpr: float = Field(description="false_positives / n_neg: the threshold's FPR on new data.")
    tpr: float = Field(description="Share of the set's positives above the threshold.")


class ProbeValidity(_Result):
    """What one trained probe reads: held-out, against baselines, and out of distribution."""

    name: str = Field(description="The probe's name under `probes.train`.")
    positive: str = Field(description="What its positive label means.")
    negative: str = Field(description="What its negative label means.")
    model: str = Field(description="The model it was trained on.")
    layer: int = Field(description="Residual-stream layer.")
    dataset: str = Field(description="Training set, relative to the protocol.")
    heldout_auroc: float = Field(description="AUROC on the training set's test split.")
    bow_auroc: float | None = Field(description="Bag of words on the same split.")
    random_auroc: float | None = Field(
        description="The same recipe on a random-weight copy of the model, on the same split."
    )
    random_seed: int | None = Field(description="Seed of the random-weight copy.")
    n_threshold: int = Field(description="Negatives the 1%-FPR threshold was set on.")
    transfer: ProbeTransfer | None = Field(description="None when no transfer set is named.")
    margin: float = Field(description="By how much the transfer AUROC must beat a baseline.")
    beats_words: bool | None = Field(
        description="Transfer AUROC above the bag of words' on the set by the margin."
    )
    beats_random: bool | None = Field(
        description="Transfer AUROC above the random-weight control's on the set by the margin."
    )
    reads_more: bool = Field(description="Both: the one positive verdict.")
    verdict: str = Field(description="The verdict in one line.")


class ReadoutTransfer(_Result):
    """A zero-shot readout on a transfer set: does it separate the labels, and which way?"""

    metric: str = Field(description="Metric name, `probe.metric`, as in the per-cell tables.")
    set: str = Field(description="The transfer set, relative to the protocol.")
    positive: str = Field(description="The set's positive label.")
    negative: str = Field(description="The set's negative label.")
    n_pos: int = Field(description="Positives with a finite value.")
    n_neg: int = Field(description="Negatives with a finite value.")
    auroc: float | None = Field(description="P(a positive reads higher than a negative).")
    p: float | None = Field(description="Two-sided Mann-Whitney p, uncorrected.")
    direction: str = Field(description="`higher = <label>`, or `none` at exactly 0.5.")


class ProbeSummary(_Result):
    """The truesight readouts of the probe stage, per cell and against the verdicts."""

    models: list[str] = Field(description="Models that produced the readouts.")
    metrics: list[str] = Field(description="Every metric seen, sorted.")
    groups: dict[str, list[str]] = Field(description="Metrics by probe.")
    labels: dict[str, str] = Field(description="What a metric means, where its name is terse.")
    cells: dict[str, dict[str, ProbeStat]] = Field(description="Per cell, per metric.")
    association: list[Association] | None = Field(
        default=None, description="Each metric against the primary outcome."
    )
    validity: list[ProbeValidity] | None = Field(
        default=None,
        description="Each trained probe's validity (artifacts/probes/<name>.json); None for "
        "runs before it was measured.",
    )
    readout_transfer: list[ReadoutTransfer] | None = Field(
        default=None, description="Each zero-shot metric on each transfer set."
    )


class Totals(_Result):
    """Item counts over the whole run."""

    items: int = Field(description="Items.")
    scored: int = Field(description="Items with a scored verdict.")
    unscored: int = Field(description="Items without one.")


class AnalysisResult(_Result):
    """Everything the analyze stage computes from the records: artifacts/analysis.json."""

    schema_version: int = Field(
        default=1,
        description="Version of this layout (SCHEMA_VERSION when written; a file without it "
        "predates it: 1).",
    )
    probes: ProbeSummary | None = Field(default=None, description="Probe readouts.")
    primary: str = Field(description="The primary outcome.")
    outcomes: list[str] = Field(description="Every outcome, primary first.")
    cells: list[Cell] = Field(description="One entry per cell, in design order.")
    contrasts: list[ContrastResult] = Field(description="Contrast × subject × outcome.")
    correction: Correction | None = Field(default=None, description="The p-value correction.")
    models: list[ModelFit] | None = Field(default=None, description="Regression models.")
    false_alarms: list[FalseAlarm] | None = Field(
        default=None, description="Cells with nothing planted (empty without plants)."
    )
    missing: list[Missing] | None = Field(default=None, description="Unscored items per cell.")
    totals: Totals = Field(description="Item counts.")

    def cell(self, key: str) -> Cell | None:
        """The cell with this key, if the analysis has it."""
        return next((c for c in self.cells if c.cell == key), None)


class FieldAgreement(_Result):
    """Agreement on one verdict field with comparable values (bool, enum, ordinal, int)."""

    overlap_n: int = Field(description="Overlap pairs (two evaluators, one item).")
    agree: float | None = Field(description="Share of overlap pairs that agree.")
    kappa: float | None = Field(description="Cohen's kappa over the overlap pairs.")
    alpha: float | None = Field(description="Krippendorff's alpha, at `alpha_level`.")
    alpha_level: Literal["nominal", "ordinal", "interval"] = Field(
        "nominal",
        description="Alpha's level of measurement: nominal for bool and enum fields, ordinal for "
        "ordinal ones (their levels' order), interval for ints.",
    )
    self_n: int = Field(description="Planted duplicates judged twice by one evaluator.")
    self_agree: float | None = Field(description="Share of duplicates judged the same.")


class PairAgreement(_Result):
    """Agreement of one pair of evaluators on the primary outcome."""

    a: str = Field(description="One evaluator.")
    b: str = Field(description="The other.")
    n: int = Field(description="Items both judged.")
    agree: float | None = Field(description="Share judged the same.")
    kappa: float | None = Field(description="Cohen's kappa.")


class Agreement(_Result):
    """Agreement between evaluators and of each with itself: artifacts/agreement.json."""

    fields: dict[str, FieldAgreement] = Field(description="By verdict field.")
    pairs: list[PairAgreement] = Field(description="By pair of evaluators, sorted.")
    overlap_items: int = Field(description="Overlap pairs.")
    duplicates: int = Field(description="Duplicate pairs.")


def dump(result: AnalysisResult | Agreement) -> str:
    """The file's text: indented JSON, one trailing newline."""
    return result.model_dump_json(indent=2) + "\n"


def save_analysis(path: Path, result: AnalysisResult) -> None:
    write_atomic(path, dump(result))


def load_analysis(path: Path) -> AnalysisResult:
    """artifacts/analysis.json, validated (raises pydantic.ValidationError on a bad file)."""
    return AnalysisResult.model_validate_json(path.read_text())


def save_agreement(path: Path, result: Agreement) -> None:
    write_atomic(path, dump(result))


def load_agreement(path: Path) -> Agreement | None:
    """artifacts/agreement.json, validated; None when the file does not exist."""
    return Agreement.model_validate_json(path.read_text()) if path.exists() else None
