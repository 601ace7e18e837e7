"""The protocol's evaluation: the judge, the verdict fields and their types, the comprehension
check, and what judges may see (`show_question`, `unblinded`, `show_task_fields`)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    PositiveInt,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from orchestrator.protocol.base import SLUG, ModelRef, Strict


class VerdictField(Strict):
    """One field of a verdict. `bool`, `enum` (one of `values`), `ordinal` (one of `levels`, which
    are ordered), `int` (optionally within `min`..`max`), `float`, or `str` (optionally at most
    `max_length` characters). A key that does not fit the type is refused with what to write."""

    type: Literal["bool", "enum", "ordinal", "str", "int", "float"] = Field(
        description="Value type."
    )
    values: list[str] = Field(
        default_factory=list,
        validate_default=True,
        description="Allowed values of an `enum`, in no particular order.",
    )
    levels: list[str] = Field(
        default_factory=list,
        validate_default=True,
        description="The levels of an `ordinal`, lowest first (e.g. none, low, medium, high); "
        "agreement on it takes their order into account.",
    )
    description: str = Field("", description="What the evaluator must decide; shown to it.")
    max_length: PositiveInt | None = Field(
        None, description="Longest allowed value of a `str` field, in characters."
    )
    min: int | None = Field(None, description="Smallest allowed value of an `int` field.")
    max: int | None = Field(None, description="Largest allowed value of an `int` field.")

    @field_validator("values")
    @classmethod
    def _values(cls, values: list[str], info: ValidationInfo) -> list[str]:
        kind = info.data.get("type")
        if kind == "enum" and not values:
            raise _verdict_error("an enum needs `values`: the allowed answers, e.g. [yes, no]")
        if kind not in ("enum", None) and values:
            scale = "; an ordered scale is `type: ordinal` with `levels`"
            hint = scale if kind != "ordinal" else ""
            raise _verdict_error(f"`values` applies to `enum` fields only{hint}")
        if len(set(values)) != len(values):
            raise _verdict_error("values must be distinct")
        return values

    @field_validator("levels")
    @classmethod
    def _levels(cls, levels: list[str], info: ValidationInfo) -> list[str]:
        kind = info.data.get("type")
        if kind == "ordinal" and len(set(levels)) < 2:
            raise _verdict_error(
                "an ordinal needs at least two distinct `levels`, lowest first, e.g. "
                "[none, low, medium, high]"
            )
        if kind != "ordinal" and levels:
            hint = "; unordered choices are `type: enum` with `values`" if kind else ""
            raise _verdict_error(f"`levels` applies to `ordinal` fields only{hint}")
        if len(set(levels)) != len(levels):
            raise _verdict_error("levels must be distinct")
        return levels

    @field_validator("max_length")
    @classmethod
    def _max_length(cls, max_length: int | None, info: ValidationInfo) -> int | None:
        if max_length is not None and info.data.get("type") not in ("str", None):
            raise _verdict_error("max_length applies to `str` fields only; remove it")
        return max_length

    @field_validator("min", "max")
    @classmethod
    def _bounds(cls, bound: int | None, info: ValidationInfo) -> int | None:
        kind = info.data.get("type")
        if bound is not None and kind not in ("int", None):
            raise _verdict_error(
                f"`{info.field_name}` applies to `int` fields only; use `type: int`, or remove it"
            )
        low = info.data.get("min")
        if info.field_name == "max" and bound is not None and low is not None and low > bound:
            raise _verdict_error(
                f"max ({bound}) is below min ({low}); write the smaller bound as `min`"
            )
        return bound


def _verdict_error(message: str) -> PydanticCustomError:
    # a custom error's message is a template to pydantic: write no braces in it
    return PydanticCustomError("verdict_field", message)


class ComprehensionQuestion(Strict):
    """A question an evaluator must answer correctly before it judges anything."""

    id: str = Field(pattern=SLUG, description="Short id, e.g. silent-ignore.")
    question: str = Field(min_length=1, description="The question, e.g. an edge case to judge.")
    choices: list[str] = Field(
        default_factory=lambda: ["yes", "no"], min_length=2, description="Allowed answers."
    )
    answer: str = Field(description="The expected answer, one of `choices`.")
    explanation: str = Field(
        "", description="Why: shown to an evaluator that got it wrong, before its second try."
    )


class Evaluation(Strict):
    judge: ModelRef = Field(description="The model behind the evaluator agents.")
    evaluators: PositiveInt = Field(8, description="Evaluator agents working in parallel.")
    batch_size: PositiveInt = Field(50, description="Responses per evaluator batch.")
    overlap: float = Field(
        0.1, ge=0.0, le=1.0, description="Fraction of items judged by two evaluators."
    )
    max_attempts: PositiveInt = Field(
        3, description="Tries per batch before an item that still fails is recorded unscored."
    )
    max_unscored: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Largest share of items that may end unscored before the evaluate "
        "checkpoint blocks `--yes` (a run that measured little must not pass quietly); "
        "`--accept-flags` or a person approves past it.",
    )
    rubric: str = Field(min_length=1, description="What each outcome means, with edge cases.")
    comprehension: list[ComprehensionQuestion] = Field(
        default_factory=list,
        description="Questions every evaluator answers (comprehension_check) before its first "
        "item; one that fails is re-primed once with the explanations, then replaced.",
    )
    pass_mark: float = Field(
        1.0, gt=0.0, le=1.0, description="Share of comprehension questions to get right."
    )
    agent: Literal["tools", "scripted"] = Field(
        "tools",
        description="`tools`: the judge model plans its own tool calls (read_protocol, "
        "comprehension_check, get_batch, truesight, flag_issue, submit_verdicts). `scripted`: "
        "the orchestrator calls the same tools in order and forces each call, for models that "
        "cannot plan tool use (small local models).",
    )
    chunk_size: PositiveInt = Field(
        10, description="Items get_batch hands out at a time (all must be judged before more)."
    )
    duplicates: bool = Field(
        True, description="Plant one item twice in each evaluator's work (self-consistency)."
    )
    context_budget: PositiveInt = Field(
        120_000,
        description="Tokens of conversation after which an evaluator writes its notes to "
        "memory/evaluator-<k>.md and continues in a fresh conversation.",
    )
    max_turns: PositiveInt = Field(
        80, description="Model turns per evaluator conversation before it is stopped."
    )
    verdict: dict[str, VerdictField] = Field(
        min_length=1, description="The fields of one verdict, checked on submission."
    )
    show_question: bool = Field(
        False,
        description="Open each evaluator's brief with the protocol's title and research "
        "question. Off by default: judges are hypothesis-blind, given the rubric, the verdict "
        "fields and the comprehension questions, never the title, question or hypotheses.",
    )
    unblinded: list[str] = Field(
        default_factory=list,
        description="Factors whose level the evaluator view of an item may show: the user "
        "template may branch on them. Evaluators are blind to every other factor: `validate` "
        "refuses a user template whose evaluator view changes with such a factor's level. "
        "Named in the report's design section.",
    )
    show_task_fields: list[str] = Field(
        default_factory=list,
        description="Task fields (`tasks[*].fields`) shown to evaluators with each item, as a "
        "labelled part of it apart from the input, e.g. the expected answer of a factual "
        "question. Each must be a field some task has; a task without one shows it as absent. "
        "Fields belong to the task, not the cell, so showing them cannot unblind a condition. "
        "Named in the report's design section.",
    )
