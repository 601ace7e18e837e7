"""The typed result of the analysis (`AnalysisResult`, artifacts/analysis.json) and of the
agreement statistics (`Agreement`, artifacts/agreement.json), and how both are read and written.

Field order is the key order on disk. Rates are shares in [0, 1]; a statistic that cannot be
computed (an empty arm, a single category) is None, never 0. Non-finite floats are written as
JSON's NaN/Infinity constants, as json.dumps did before the result had a type, so a file written
by either reads back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from memory import write_atomic
from orchestrator.analysis.result_base import (  # noqa: F401 (re-exported)
    ArmRate,
    CellRate,
    Correction,
    Rate,
    _CellKey,
    _Result,
)
from orchestrator.analysis.result_calibration import (  # noqa: F401 (re-exported)
    Calibration,
    Confusion,
    CorrectedRate,
    Estimate,
    FieldCalibration,
)
from orchestrator.analysis.result_decisions import (  # noqa: F401 (re-exported)
    ArmTerm,
    Decision,
    Decisions,
    HypothesisDecision,
    TestComponent,
    TestResult,
)
from orchestrator.analysis.result_levels import (  # noqa: F401 (re-exported)
    Distribution,
    LevelShare,
    Mean,
)
from orchestrator.analysis.result_models import (  # noqa: F401 (re-exported)
    Coefficient,
    ModelFit,
    TermTest,
    Threshold,
)
from orchestrator.analysis.result_pooled import (  # noqa: F401 (re-exported)
    PooledContrast,
    PooledSubject,
)
from orchestrator.analysis.result_probes import (  # noqa: F401 (re-exported)
    Association,
    ProbeStat,
    ProbeSummary,
    ProbeTransfer,
    ProbeValidity,
    ReadoutTransfer,
)

SCHEMA_VERSION = 3
"""Bumped whenever a field changes meaning or goes away, or a part of the analysis is added.
2: the hypotheses decided (`decisions`), the judges against human labels (`calibration`),
contrasts say which outcomes they are named for (`named`), constraints are checked, probe
validity (`ProbeSummary.validity`, `readout_transfer`), and every list is in design order
(cells as the protocol crosses them), no longer alphabetical.
3: contrasts pooled across subjects (`pooled`, `pooled_correction`: OLS `y ~ arm + C(subject)`,
errors clustered by task, corrected per outcome apart from the per-subject contrasts); per-cell
distributions of enum and ordinal verdict fields (`Cell.distributions`: each level's count,
share and simultaneous Goodman 95% interval) and means of int and float fields (`Cell.means`,
95% t interval); models have joint Wald and likelihood-ratio tests of every term
(`ModelFit.tests`; `interaction_term` names the highest-order one, whatever its df), and an
ordinal outcome is fitted by OrderedModel (`family`, `levels`, `thresholds`). Files before read
them as empty (None)."""


class Cell(_CellKey):
    """Per-cell counts: every outcome's rate, how the enum and ordinal verdict fields spread,
    the int and float fields' means, screening flags."""

    items: int = Field(description="Items in the cell, scored or not.")
    outcomes: dict[str, CellRate] = Field(description="Rate of each outcome, by name.")
    enums: dict[str, dict[str, int]] = Field(
        description="For each enum verdict field, how many scored items took each value (the "
        "counts of `distributions`, kept for readers of older files)."
    )
    distributions: dict[str, Distribution] = Field(
        default_factory=dict,
        description="For each enum and ordinal verdict field, every level's count and share "
        "with simultaneous 95% intervals (empty in files written before them).",
    )
    means: dict[str, Mean] = Field(
        default_factory=dict,
        description="For each int and float verdict field, the mean with its 95% t interval "
        "(empty in files written before them).",
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


class Totals(_Result):
    """Item counts over the whole run."""

    items: int = Field(description="Items.")
    scored: int = Field(description="Items with a scored verdict.")
    unscored: int = Field(description="Items without one.")


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
    pooled: list[PooledContrast] | None = Field(
        default=None,
        description="Contrast × outcome pooled across subjects (subject fixed effects, errors "
        "clustered by task); empty with one subject, None in files that predate it.",
    )
    pooled_correction: Correction | None = Field(
        default=None,
        description="How the pooled p-values were corrected: each outcome's pooled contrasts "
        "are one family; None without pooled contrasts.",
    )
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
