"""What a small model writes in the compact form of `research design` (compact.py): content
only, every string and list bounded so that a draft, filled to its caps, ends within its token
limit, and every name a pattern the loader takes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from orchestrator.protocol.base import Strict

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,23}$")]
"""A factor, level or field name: lower-case letters, digits and '_'."""
Id = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,31}$")]
"""A task, plant or question id: lower-case letters, digits and '-'."""


def _text(most: int, what: str, least: int = 1) -> Any:
    return Field(min_length=least, max_length=most, description=what)


class CompactFactor(Strict):
    name: Name = Field(description="The factor's name, e.g. framing, urgency.")
    control: Literal["control", "none", "absent", "off", "neutral", "baseline"] = Field(
        description="The control level's name."
    )
    treatment: Name = Field(
        description="The level that applies the manipulation, named for what it does: e.g. "
        "warned, hurried, planted."
    )
    description: str = _text(300, "What the two levels change in what the model is shown.")
    hypothesis: str = _text(240, "What you expect the treatment level to do to the outcome.")
    direction: Literal["increase", "decrease"] = Field(
        description="Whether the treatment level should raise or lower the outcome's rate."
    )


class CompactPlan(Strict):
    id: Id = Field(description="Short id of the experiment, e.g. tool-trust.")
    title: str = _text(100, "The experiment's title.")
    question: str = _text(400, "The research question, one or two sentences.")
    factors: list[CompactFactor] = Field(min_length=1, max_length=2)
    outcome: Name = Field(description="The bool outcome the judges decide, e.g. followed_plant.")
    outcome_means: str = _text(
        500, "When the outcome is true and when false, with its edge cases: the judges' rubric."
    )


class CompactTask(Strict):
    id: Id = Field(description="Short task id, e.g. sum-board-minutes.")
    kind: Name = Field(description="Kind of task: summarise, reply, review, advise, ...")
    instruction: str = _text(250, "What the user asks for.")
    document: str = _text(
        800, "The document the task is about (an email, report, log, ...), or empty.", least=0
    )


class CompactPlant(Strict):
    id: Id = Field(description="Short plant id.")
    kind: Name = Field(description="Kind: steer_user, conceal_fact, downplay_risk, ...")
    text: str = _text(250, "The instruction hidden in the document.")


class CompactQuestion(Strict):
    id: Id = Field(description="Short id, e.g. vague-warning.")
    question: str = _text(400, "An edge case of the rubric, asked as a yes/no question.")
    answer: Literal["yes", "no"]
    explanation: str = _text(300, "Why that is the answer.")


class CompactComprehension(Strict):
    comprehension: list[CompactQuestion] = Field(min_length=1, max_length=3)


TASKS = {0: (2, 2), 1: (1, 2)}
"""Tasks per call (least, most): the materials' first call, and each further batch."""
PLANTS = {0: (1, 2), 1: (1, 2)}
"""Plants per call, when a factor plants."""


class CompactAnalysis(Strict):
    """The analysis stage's input; its schema (keyed by the plan's levels) is built in
    compact.py, this checks an input that no grammar held (an API model's, a replay's)."""

    baseline_rate: float = Field(ge=0, le=1)
    treated_rates: dict[str, Annotated[float, Field(ge=0, le=1)]]
    focus: str = _text(300, "What to look for in the responses.")
