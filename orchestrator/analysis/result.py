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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from memory import write_atomic

SCHEMA_VERSION = 2
"""Bumped whenever a field changes meaning or goes away, or a part of the analysis is added.
2: the hypotheses decided (`decisions`), the judges against human labels (`calibration`),
contrasts say which outcomes they are named for (`named`), constraints are checked, probe
validity (`ProbeSummary.validity`, `readout_transfer`), and every list is in design order
(cells as the protocol crosses them), no longer alphabetical."""


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
    named: bool = Field(
        default=True,
        description="Whether the contrast is named for this outcome (protocol `outcomes`, "
        "default the primary); other outcomes are the same comparison, reported apart.",
    )

    @property
    def label(self) -> str:
        """How a reader sees this row: the contrast's name for an outcome it was named for,
        `name · outcome` for the same comparison on another outcome."""
        return self.name if self.named else f"{self.name} · {self.outcome}"


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


class ConstraintExample(_Result):
    """One item whose verdict breaks a constraint, with what the judge wrote for it."""

    item_id: str = Field(description="The item.")
    evidence: str = Field(description="The verdict's text fields (e.g. its evidence quote).")


class ConstraintCell(_CellKey):
    """One cell outside a constraint's levels: how many of its verdicts break it."""

    checked: int = Field(description="Scored items of the cell.")
    violations: int = Field(description="Of them with the impossible verdict.")
    items: list[str] = Field(description="Every violating item.")
    examples: list[ConstraintExample] = Field(description="Up to three, with their evidence.")


class ConstraintCheck(_Result):
    """A protocol constraint (`analysis.constraints`) checked against the primary verdicts."""

    outcome: str = Field(description="The verdict field constrained.")
    value: str = Field(description="Its impossible value, as text (`true` for a bool field).")
    requires: dict[str, list[str]] = Field(description="Levels outside which it is impossible.")
    why: str = Field(description="The protocol's reason, in words.")
    rule: str = Field(description="The constraint in words, e.g. `complied = true requires ...`.")
    checked: int = Field(description="Scored items in the cells outside `requires`.")
    violations: int = Field(description="Of them with the impossible verdict.")
    cells: list[ConstraintCell] = Field(description="Each cell outside `requires`, design order.")


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


Decision = Literal["supported", "not_supported", "inconclusive"]
"""What the pre-registered rule makes of a test: the interval lies on the predicted side of the
boundary (and the adjusted p is below alpha), on the other side, or neither."""


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


class Totals(_Result):
    """Item counts over the whole run."""

    items: int = Field(description="Items.")
    scored: int = Field(description="Items with a scored verdict.")
    unscored: int = Field(description="Items without one.")


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


class AnalysisResult(_Result):
    """Everything the analyze stage computes from the records: artifacts/analysis.json."""

    schema_version: int = Field(
        default=1,
        description="Version of this layout (`SCHEMA_VERSION` when written; a file written "
        "before it existed reads as 1).",
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
    constraints: list[ConstraintCheck] | None = Field(
        default=None, description="Each protocol constraint, checked (None: not checked)."
    )
    totals: Totals = Field(description="Item counts.")
    decisions: Decisions | None = Field(
        default=None, description="The hypotheses decided (None in files before version 2)."
    )
    calibration: Calibration | None = Field(
        default=None, description="The judges against human labels; None without labels."
    )

    @model_validator(mode="before")
    @classmethod
    def _older(cls, data: Any) -> Any:
        """Before version 2, contrasts had no `named`: each was named for the primary outcome,
        and every other outcome was the same comparison."""
        if not isinstance(data, dict) or data.get("schema_version", 1) >= 2:
            return data
        primary = data.get("primary")
        contrasts = [
            {"named": c.get("outcome") == primary, **c} if isinstance(c, dict) else c
            for c in data.get("contrasts") or []
        ]
        return {**data, "contrasts": contrasts}

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
