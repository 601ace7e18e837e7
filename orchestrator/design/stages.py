"""The design stages, in order, and which protocol sections each one drafts.

A stage's tool schema is the pydantic protocol schema of its sections (`stage_model`), so what
the designer may write is exactly what the loader accepts, field by field; the cross-section
rules (references, hypotheses' tests, templates, blinding) are the loader's, run on the merged
draft (orchestrator/design/draft.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from orchestrator.design.targets import MATERIALS_PLAN, MaterialsPlan
from orchestrator.protocol.base import Strict
from orchestrator.protocol.judging import Evaluation
from orchestrator.protocol.materials import Materials
from orchestrator.protocol.schema import Protocol

StageName = Literal["plan", "materials", "comprehension", "analysis"]


@dataclass(frozen=True)
class DesignStage:
    name: StageName
    title: str
    """What the stage decides, as its checkpoint shows it."""
    sections: tuple[str, ...]
    """Protocol sections it drafts: top-level fields, or `evaluation.comprehension`."""
    diversity: bool = False
    """Whether its tasks and plants are checked for near-duplicates and kind coverage."""
    batches: int = 1
    """At most this many calls draft it: the first writes the sections, each further one adds
    tasks and plants to the materials (`add_<stage>`), told what is there so it writes
    something else, until the plan's targets are reached (orchestrator/design/targets.py)."""
    design_only: tuple[str, ...] = ()
    """Sections of its tool input that are not the protocol's: kept in the design session and
    shown at the checkpoint, never merged into the protocol."""

    def tool(self, batch: int = 0) -> str:
        return f"write_{self.name}" if batch == 0 else f"add_{self.name}"


DESIGN_ONLY: dict[str, type[BaseModel]] = {MATERIALS_PLAN: MaterialsPlan}
"""The design-only sections a stage may have, and their schema."""

MAX_BATCHES = 4
"""Calls that may draft the materials: the plan's targets are asked for in halves, which leaves
two calls for what the designer left short."""

STAGES: tuple[DesignStage, ...] = (
    DesignStage(
        "plan",
        "factors and levels, hypotheses with their tests, subjects, outcome fields and rubric",
        ("id", "title", "question", "hypotheses", "design", "subjects", "evaluation"),
        design_only=(MATERIALS_PLAN,),
    ),
    DesignStage(
        "materials",
        "tasks (with their documents), planted instructions, level texts, templates, tools",
        ("tools", "materials"),
        diversity=True,
        batches=MAX_BATCHES,
    ),
    DesignStage(
        "comprehension",
        "comprehension questions for the judges, from the rubric's edge cases",
        ("evaluation.comprehension",),
    ),
    DesignStage(
        "analysis",
        "the pre-registered analysis: primary outcome, contrasts, models, assumed rates",
        ("analysis", "checkpoints"),
    ),
)


def stage(name: str) -> DesignStage:
    return next(s for s in STAGES if s.name == name)


def key(section: str) -> str:
    """The section's property name in the stage's tool input."""
    return section.rsplit(".", 1)[-1]


def _field(section: str) -> tuple[Any, Any]:
    owner: type[BaseModel] = Protocol
    parts = section.split(".")
    if len(parts) == 2:
        owner = {"evaluation": Evaluation, "materials": Materials}[parts[0]]
    info = owner.model_fields[parts[-1]]
    return info.annotation, info


@cache
def stage_model(name: str) -> type[BaseModel]:
    """The stage's sections as one strict pydantic model: its tool input."""
    fields = {key(s): _field(s) for s in stage(name).sections}
    for extra in stage(name).design_only:
        model = DESIGN_ONLY[extra]
        fields[extra] = (model, Field(description=model.__doc__))
    return create_model(f"Design_{name}", __base__=Strict, **fields)  # type: ignore[call-overload]


BATCH = ("tasks", "plants")
"""What a further batch adds to the materials."""


@cache
def batch_model() -> type[BaseModel]:
    """A further batch of materials: more tasks and plants."""
    fields = {name: _field(f"materials.{name}") for name in BATCH}
    return create_model("Design_batch", __base__=Strict, **fields)  # type: ignore[call-overload]


def batch_schema() -> dict[str, Any]:
    schema = batch_model().model_json_schema()
    schema["required"] = list(BATCH)
    schema.pop("title", None)
    return schema


def stage_schema(name: str) -> dict[str, Any]:
    """The JSON schema of the stage's tool input, every section required (a default left out
    would be a decision the designer did not make)."""
    schema = stage_model(name).model_json_schema()
    schema["required"] = [key(s) for s in stage(name).sections] + list(stage(name).design_only)
    schema.pop("title", None)
    return schema
