"""The plan's promise about the materials, and how far the drafted materials are from it.

The plan stage declares `materials_plan`: the kinds of tasks and of planted instructions the
design needs, and how many of each. It is design-only: kept in the design session and shown at
the plan's checkpoint, never merged into the protocol. The materials stage then asks for batches
until the counts are reached (at most `stages.MAX_BATCHES`; what is still short is shown at the
checkpoint rather than failing the design), and the materials check holds the drafts to the
declared kinds (orchestrator/design/diversity.py).
"""

from __future__ import annotations

import math
from typing import Any, Self

from pydantic import Field, model_validator

from agents.designer.agent import Wanted
from orchestrator.protocol.base import Strict
from orchestrator.protocol.materials import Materials

MATERIALS_PLAN = "materials_plan"
"""The plan stage's design-only section."""
SHARE = 2
"""The targets are asked for in this many parts: two batches when the designer writes what it
is asked, and further ones (up to the bound) for what it left short."""


class MaterialsPlan(Strict):
    """The kinds of task and of planted instruction the design needs, and how many of each
    the materials will have; the materials are written in batches against it. Not part of the
    protocol."""

    task_kinds: list[str] = Field(
        min_length=1, description="Kinds of task the design needs (e.g. summarise, review)."
    )
    plant_kinds: list[str] = Field(
        description="Kinds of planted instruction (e.g. steer_user); empty if none are planted."
    )
    tasks: int = Field(gt=0, description="How many tasks the materials will have.")
    plants: int = Field(ge=0, description="How many planted instructions.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for name, kinds, n in (
            ("task", self.task_kinds, self.tasks),
            ("plant", self.plant_kinds, self.plants),
        ):
            if len(set(kinds)) != len(kinds):
                raise ValueError(f"{name}_kinds must be distinct")
            if n < len(kinds):
                raise ValueError(
                    f"{name}s ({n}) is fewer than the {name} kinds ({len(kinds)}): "
                    f"each declared kind needs at least one {name}"
                )
        if self.plants and not self.plant_kinds:
            raise ValueError("plants is above 0 but no plant_kinds are declared")
        return self


def plan_of(sections: dict[str, Any] | None) -> MaterialsPlan | None:
    """The materials plan of an approved plan stage; None for a plan approved before plans
    declared one (its materials are checked and batched as they were then)."""
    value = (sections or {}).get(MATERIALS_PLAN)
    return None if value is None else MaterialsPlan.model_validate(value)


def materials_of(sections: dict[str, Any]) -> Materials | None:
    """The drafted materials of the materials stage's sections (None before the first call)."""
    value = sections.get("materials")
    return None if value is None else Materials.model_validate(value)


def uncovered(plan: MaterialsPlan, materials: Materials) -> tuple[list[str], list[str]]:
    """Declared task kinds and plant kinds that no task (plant) has yet."""
    tasks = {t.kind for t in materials.tasks}
    plants = {p.kind for p in materials.plants}
    return (
        [k for k in plan.task_kinds if k not in tasks],
        [k for k in plan.plant_kinds if k not in plants],
    )


def short(plan: MaterialsPlan | None, materials: Materials | None) -> list[str]:
    """What the materials lack of the plan's targets, one line each; empty when reached."""
    if plan is None or materials is None:
        return []
    out = []
    for name, have, want in (
        ("tasks", len(materials.tasks), plan.tasks),
        ("plants", len(materials.plants), plan.plants),
    ):
        if have < want:
            out.append(f"{name}: {have} of the {want} the plan declares")
    tasks, plants = uncovered(plan, materials)
    if tasks:
        out.append(f"task kinds with no task: {', '.join(tasks)}")
    if plants:
        out.append(f"plant kinds with no plant: {', '.join(plants)}")
    return out


def reached(plan: MaterialsPlan, materials: Materials) -> bool:
    """Whether the materials have the declared counts (kinds are the check's business)."""
    return len(materials.tasks) >= plan.tasks and len(materials.plants) >= plan.plants


def per_call(target: int, have: int) -> int:
    """How many to ask for in one call: a share of the target, no more than is missing."""
    return max(0, min(math.ceil(target / SHARE), target - have))


LEGACY_BATCHES = 2
"""Materials batches for a plan that declares no materials plan: as many as before plans did."""


def more(plan: MaterialsPlan | None, sections: dict[str, Any], batch: int) -> bool:
    """Whether to ask for batch `batch` (1, 2, ...) of the materials, after `sections`."""
    if plan is None:
        return batch < LEGACY_BATCHES
    materials = materials_of(sections)
    return materials is not None and not reached(plan, materials)


def wanted(plan: MaterialsPlan | None, materials: Materials | None) -> Wanted | None:
    """What the next materials call is asked for (`materials`: what the earlier ones wrote)."""
    if plan is None:
        return None
    have_tasks = len(materials.tasks) if materials else 0
    have_plants = len(materials.plants) if materials else 0
    tasks, plants = uncovered(plan, materials) if materials else ([], [])
    return Wanted(
        tasks=plan.tasks,
        plants=plan.plants,
        task_kinds=plan.task_kinds,
        plant_kinds=plan.plant_kinds,
        have_tasks=have_tasks,
        have_plants=have_plants,
        missing_kinds=tasks + plants,
        write_tasks=per_call(plan.tasks, have_tasks),
        write_plants=per_call(plan.plants, have_plants),
    )
