"""Typed results of the probes: per-cell readouts, their association with verdicts, and each
trained probe's validity (random-weight control, transfer set)."""

from __future__ import annotations

from pydantic import Field

from orchestrator.analysis.result_base import _Result


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


"""What the pre-registered rule makes of a test: the interval lies on the predicted side of the
boundary (and the adjusted p is below alpha), on the other side, or neither."""
