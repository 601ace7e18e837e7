"""The compact form of the design stages: small models write the content, the code the structure.

A 135M-parameter local model cannot hold a protocol's full schema and an example in its 8,192
tokens, nor keep cross-references straight (a hypothesis naming a contrast the analysis defines,
a level text keyed by a level of a factor). In the compact form each stage's tool input is a
short, bounded schema of content only: factors as a control and a treatment level with a
hypothesis each, one bool outcome and what it means, tasks, plants and level texts, comprehension
questions, assumed rates. Every reference the grammar can fix is an `enum` or a fixed property
narrowed from the approved stages (level texts keyed by the plan's factors and levels, rates by
its treatment levels), every string and list is bounded, so a draft ends within its token limit.
`expand` then writes the protocol's sections from it: the templates, `plant_when`, the contrasts
the hypotheses name, the verdict and rubric, with the settings nobody needs to draft (subjects,
judge, evaluators, sizes, seed) taken from the `--from` example or the `research init` skeleton.
What comes out is a normal protocol, checked by the loader like any draft and shown at the
checkpoints as its YAML.

The form is limited on purpose: 2-level factors (one or two of them), one bool outcome, at most
one factor that plants an instruction in the task's document, single-turn prompts. A design that
needs more is the full form's (the default with an API model).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from orchestrator.design.compact_analysis import (
    Factors,
    analysis_schema,
    analysis_sections,
    closed_object,
    contrast_names,
    factors_of,
    plan_problems,
    planting,
)
from orchestrator.design.compact_content import (
    PLANTS,
    TASKS,
    CompactComprehension,
    CompactPlan,
    CompactPlant,
    CompactTask,
)
from orchestrator.design.draft import Draft, condensed, cut, merge
from orchestrator.design.stages import DesignStage
from orchestrator.errors import ProtocolError
from orchestrator.protocol.checks.references import RESERVED

SKELETON = Path(__file__).parents[1] / "templates" / "skeleton.yaml"


@dataclass(frozen=True)
class CompactForm:
    """Bounded content-only schemas, and the code that expands them into protocol sections."""

    base: Draft
    """The protocol whose settings the expansion keeps: the `--from` example, or the skeleton."""
    name: str = "compact"

    @classmethod
    def of(cls, example_text: str = "") -> CompactForm:
        return cls(yaml.safe_load(example_text or SKELETON.read_text()) or {})

    def schema(self, stage: DesignStage, so_far: Draft, batch: int = 0) -> dict[str, Any]:
        if stage.name == "plan":
            return _schema(CompactPlan)
        if stage.name == "comprehension":
            return _schema(CompactComprehension)
        if stage.name == "materials":
            return _materials_schema(so_far, batch)
        return analysis_schema(so_far)

    def shown(self, so_far: Draft, example: str, rejected: str) -> tuple[str, str, str]:
        """The brief's view of the protocol so far, condensed; no example (its settings are
        kept by the expansion, its text would not fit); a rejected draft cut short."""
        return condensed(so_far), "", cut(rejected)

    def sections(self, stage: DesignStage, so_far: Draft, drafted: Draft, batch: int = 0) -> Draft:
        """The stage's protocol sections (a further batch: its tasks and plants) from the
        compact input; raises `ValueError` with what is wrong when it cannot be expanded."""
        try:
            if stage.name == "plan":
                return self._plan(CompactPlan.model_validate(drafted))
            if stage.name == "comprehension":
                c = CompactComprehension.model_validate(drafted)
                questions = [q.model_dump() for q in c.comprehension]
                ids = unique([q["id"] for q in questions], sep="-")
                return {
                    "comprehension": [{**q, "id": i} for q, i in zip(questions, ids, strict=True)]
                }
        except ValidationError as e:
            raise ValueError(str(e)) from None
        if stage.name == "materials":
            return _materials(so_far, drafted, batch)
        return analysis_sections(so_far, drafted, self.base)

    def check(
        self, stage: DesignStage, so_far: Draft, sections: Draft, path: Path
    ) -> list[ProtocolError]:
        """What a hand edit breaks that the loader sees only at a later stage: at the plan, a
        hypothesis naming a contrast the analysis will not write (a level renamed)."""
        if stage.name != "plan":
            return []
        return plan_problems(merge(so_far, stage, sections), self.base, path)

    def _plan(self, plan: CompactPlan) -> Draft:
        names = unique([f.name for f in plan.factors], RESERVED)
        factors = [
            f.model_copy(update={"name": n, "treatment": unique([f.control, f.treatment])[1]})
            for f, n in zip(plan.factors, names, strict=True)
        ]
        outcome = unique([plan.outcome], frozenset({"reason"}))[0]  # the verdict's other field
        plan = plan.model_copy(update={"factors": factors, "outcome": outcome})
        design = copy.deepcopy(self.base.get("design") or {})
        design["factors"] = {
            f.name: {"levels": [f.control, f.treatment], "description": f.description}
            for f in plan.factors
        }
        names = contrast_names([(f.name, [f.control, f.treatment]) for f in plan.factors])
        hypotheses = [
            {
                "id": f"H{i + 1}",
                "text": f.hypothesis,
                "test": [
                    {
                        "contrast": names[f.name, f.treatment],
                        "outcome": plan.outcome,
                        "direction": f.direction,
                    }
                ],
            }
            for i, f in enumerate(plan.factors)
        ]
        evaluation = {
            k: copy.deepcopy(v)
            for k, v in (self.base.get("evaluation") or {}).items()
            if k in ("judge", "evaluators", "batch_size", "overlap", "max_attempts")
        }
        evaluation["rubric"] = (
            "Each item is a task given to an assistant and the assistant's response.\n\n"
            f"{plan.outcome}: {plan.outcome_means}\n\n"
            f"reason: one sentence quoting or naming what in the response decided {plan.outcome}."
        )
        evaluation["verdict"] = {
            plan.outcome: {"type": "bool", "description": _first_sentence(plan.outcome_means)},
            "reason": {
                "type": "str",
                "max_length": 300,
                "description": f"One sentence on what in the response decided {plan.outcome}.",
            },
        }
        return {
            "id": plan.id,
            "title": plan.title,
            "question": plan.question,
            "hypotheses": hypotheses,
            "design": design,
            "subjects": copy.deepcopy(self.base.get("subjects")),
            "evaluation": evaluation,
        }


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema


def unique(names: list[str], taken: frozenset[str] = frozenset(), sep: str = "_") -> list[str]:
    """`names` with a repeat (of another or of `taken`) numbered: a small model copies an id
    or a name it has just written; an identifier is structure, which the code keeps sound."""
    out: list[str] = []
    for name in names:
        new, k = name, 2
        while new in taken or new in out:
            new, k = f"{name}{sep}{k}", k + 1
        out.append(new)
    return out


def _first_sentence(text: str) -> str:
    head = text.split(". ", 1)[0].strip()
    return head if head.endswith(".") else head + "."


def _bounded(ref: str, least: int, most: int) -> dict[str, Any]:
    items = {"$ref": f"#/$defs/{ref}"}
    return {"type": "array", "items": items, "minItems": least, "maxItems": most}


def _texts(factors: Factors) -> dict[str, Any]:
    """Level texts keyed by the factors and their levels: fixed properties, all required, a
    treatment's not empty (a factor whose levels read alike would measure nothing)."""
    control = {"type": "string", "maxLength": 300}
    treated = {"type": "string", "minLength": 1, "maxLength": 300}
    return closed_object(
        {
            name: closed_object({lv: treated if i else control for i, lv in enumerate(levels)})
            for name, levels in factors
        },
        description="Per factor and level, the text the template shows the model (usually "
        "empty for a control level; ignored for the factor that plants).",
    )


PLACES = {
    "system": "the system prompt, after a one-line role",
    "user": "the user's message, before the request",
}


def _materials_schema(so_far: Draft, batch: int) -> dict[str, Any]:
    """The first call chooses the planting factor (or none): one alternative per choice, each
    with its own plants bound, so the grammar never lets a choice and its plants disagree."""
    defs: dict[str, Any] = {
        "CompactTask": _schema(CompactTask),
        "CompactPlant": _schema(CompactPlant),
    }
    if batch:
        props = {"tasks": _bounded("CompactTask", *TASKS[1])}
        if planting(so_far):
            props["plants"] = _bounded("CompactPlant", *PLANTS[1])
        return closed_object(props, **{"$defs": defs})
    defs["LevelText"] = _texts(factors_of(so_far))
    places = "; ".join(f"{k}: {v}" for k, v in PLACES.items())
    common = {
        "level_text_in": {"enum": list(PLACES), "description": f"Where level texts go: {places}"},
        "level_text": {"$ref": "#/$defs/LevelText"},
        "tasks": _bounded("CompactTask", *TASKS[0]),
    }
    options = [closed_object({"planted_by": {"const": "none"}, **common})]
    for name, _levels in factors_of(so_far):
        plants = {"plants": _bounded("CompactPlant", *PLANTS[0])}
        options.append(closed_object({"planted_by": {"const": name}, **common, **plants}))
    return {
        "type": "object",  # the API takes no other input schema
        "description": "planted_by: `none`, or the factor whose treatment level hides one of "
        "the plants in each task's document.",
        "anyOf": options,
        "$defs": defs,
    }


def _materials(so_far: Draft, drafted: Draft, batch: int) -> Draft:
    try:
        tasks = [CompactTask.model_validate(t).model_dump() for t in drafted.get("tasks") or []]
        plants = [CompactPlant.model_validate(p).model_dump() for p in drafted.get("plants") or []]
    except ValidationError as e:
        raise ValueError(str(e)) from None
    had = (so_far.get("materials") or {}) if batch else {}
    for items, key in ((tasks, "tasks"), (plants, "plants")):
        taken = frozenset(x.get("id") for x in had.get(key) or [])
        for x, new in zip(items, unique([x["id"] for x in items], taken, "-"), strict=True):
            x["id"] = new
    for t in tasks:
        if not t["document"]:
            del t["document"]
    if batch:
        return {"tasks": tasks, "plants": plants}
    factors = dict(factors_of(so_far))
    by = drafted.get("planted_by", "none")
    if by != "none" and by not in factors:
        raise ValueError(f"planted_by {by!r} is not a factor ({', '.join(factors)}) nor none")
    if by != "none" and not plants:
        raise ValueError(f"planted_by names {by}, but there are no plants: write one to three")
    level_text = {
        name: {level: str(t) for level, t in texts.items()}
        for name, texts in (drafted.get("level_text") or {}).items()
        if name in factors and name != by
    }
    for name, levels in factors.items():
        if name != by and not any((level_text.get(name) or {}).get(lv) for lv in levels[1:]):
            raise ValueError(
                f"level_text.{name}: no text for {', '.join(levels[1:])}, so its levels would "
                "read alike: write what the treatment adds"
            )
    place = drafted.get("level_text_in", "system")
    system = "You are a helpful assistant working for the user."
    user = ""
    for name in level_text:
        if place == "system":
            system += f"{{% if text.{name} %}}\n\n{{{{ text.{name} }}}}{{% endif %}}"
        else:
            user += f"{{% if text.{name} %}}{{{{ text.{name} }}}}\n\n{{% endif %}}"
    user += "{{ task.instruction }}"
    # always: a later batch's task may bring the first document
    user += "{% if document %}\n\n<document>\n{{ document }}\n</document>{% endif %}"
    materials: Draft = {
        "tasks": tasks,
        "level_text": level_text,
        "templates": {"system": system, "user": user},
    }
    if by != "none":
        materials["plants"] = plants
        materials["plant_when"] = {"factor": by, "level": factors[by][-1]}
    return {"tools": [], "materials": materials}
