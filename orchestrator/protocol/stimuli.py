"""From a protocol to its cells and stimuli, deterministically from the protocol's seed.

Every cell uses the same seeded sequence of tasks (and of plants), so cells differ only in their
factor levels: contrasts compare like with like, and task can serve as a cluster in the analysis.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from orchestrator.protocol.schema import Plant, Protocol, Scalar, Task, Templates, Turn
from orchestrator.protocol.templates import render
from orchestrator.protocol.yamlmap import Path_

RenderedTurn = tuple[str, str | None, str | None, dict[str, Any] | None]
"""(role, text, tool, input) of one turn after the system prompt: the text is None for a turn the
subject generates; a `tool_use` turn has its tool's name and rendered input (its text is what the
assistant says before the call), a `tool_result` turn its tool's name."""
Turns = tuple[RenderedTurn, ...]


@dataclass(frozen=True)
class Cell:
    """One combination of subject and factor levels."""

    subject: str
    levels: tuple[tuple[str, str], ...]

    @property
    def key(self) -> str:
        return ".".join([self.subject] + [level for _, level in self.levels])

    def as_dict(self) -> dict[str, str]:
        return {"subject": self.subject, **dict(self.levels)}


@dataclass(frozen=True)
class Stimulus:
    item_id: str
    cell: Cell
    replicate: int
    task_id: str
    plant_id: str | None
    system: str
    user: str
    blind_user: str = field(repr=False)
    """The user message as evaluators see it, rendered without any blinded factor's level."""
    turns: Turns = ()
    """The conversation after the system prompt, for a list of turns (empty for the two-key
    form, whose conversation is `user` alone); `user` is then its last turn."""
    blind_turns: Turns = field(default=(), repr=False)
    """The conversation as evaluators see it, rendered like `blind_user`."""


def template_sources(protocol: Protocol) -> list[tuple[Path_, str, str]]:
    """(where in the file, role, template) for every template the subject's prompt is made of;
    a generated turn has none."""
    t = protocol.materials.templates
    base: Path_ = ("materials", "templates")
    if isinstance(t, Templates):
        return [((*base, "system"), "system", t.system), ((*base, "user"), "user", t.user)]
    return [
        ((*base, i, *at), turn.role, source)
        for i, turn in enumerate(t)
        for at, source in turn.sources()
    ]


def generated_turns(protocol: Protocol) -> int:
    """How many turns of the conversation the subject writes before its judged reply."""
    t = protocol.materials.templates
    return 0 if isinstance(t, Templates) else sum(1 for x in t if x.source is None)


def _render_turns(
    turns: list[Turn], ctx: dict[str, Any], plant: tuple[int, str, str] | None
) -> Turns:
    """Every turn after the system prompt, rendered; `plant` (turn index, text, key) puts a
    plant into one of them (`materials.plant_into`)."""
    out: list[RenderedTurn] = []
    tool: str | None = None
    for i, x in enumerate(turns):
        if x.role == "system":
            continue
        text = None if x.source is None else render(x.source, ctx).strip()
        if plant is not None and plant[0] == i and text is not None:
            text = insert_plant(text, plant[1], plant[2])
        if x.tool_use is not None:
            tool = x.tool_use.name
            out.append((x.role, text, tool, _render_input(x.tool_use.input, ctx)))
        else:
            out.append((x.role, text, tool if x.role == "tool_result" else None, None))
    return tuple(out)


def _last_said(turns: Turns) -> str:
    """The conversation's last user or tool_result turn: what the subject replies to."""
    return next((t[1] or "" for t in reversed(turns) if t[0] in ("user", "tool_result")), "")


def _render_input(value: Any, ctx: dict[str, Any]) -> Any:
    """A tool call's input with every string in it rendered."""
    if isinstance(value, str):
        return render(value, ctx).strip()
    if isinstance(value, dict):
        return {k: _render_input(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_input(v, ctx) for v in value]
    return value


def cells(protocol: Protocol) -> list[Cell]:
    names = list(protocol.design.factors)
    combos = itertools.product(*(protocol.design.factors[n].levels for n in names))
    level_sets = [tuple(zip(names, combo, strict=True)) for combo in combos]
    return [Cell(s.id, levels) for s in protocol.subjects for levels in level_sets]


def n_per_cell(protocol: Protocol, pilot: bool) -> int:
    return protocol.design.pilot_n_per_cell if pilot else protocol.design.n_per_cell


def build_stimuli(protocol: Protocol, *, pilot: bool) -> list[Stimulus]:
    m = protocol.materials
    rng = random.Random(protocol.design.seed)
    task_order = rng.sample(range(len(m.tasks)), len(m.tasks))
    plant_order = rng.sample(range(len(m.plants)), len(m.plants)) if m.plants else []
    out = []
    for cell in cells(protocol):
        for r in range(n_per_cell(protocol, pilot)):
            task = m.tasks[task_order[r % len(task_order)]]
            plant = m.plants[plant_order[r % len(plant_order)]] if plant_order else None
            out.append(_stimulus(protocol, cell, r, task, plant))
    return out


def _planted(protocol: Protocol, cell: Cell) -> bool:
    when = protocol.materials.plant_when
    return when is not None and dict(cell.levels).get(when.factor) == when.level


def insert_plant(document: str, plant_text: str, key: str) -> str:
    """Put the plant between two paragraphs of the document, at a place chosen by `key`."""
    paras = document.split("\n\n")
    gap = random.Random(key).randint(1, max(1, len(paras) - 1))
    return "\n\n".join(paras[:gap] + [plant_text.strip()] + paras[gap:])


def plant_key(protocol: Protocol, task: Task, replicate: int) -> str:
    """What chooses where a plant goes in its text: the same place in every cell."""
    return f"{protocol.design.seed}:{task.id}:{replicate}"


def blinded_factors(protocol: Protocol) -> list[str]:
    """The factors evaluators are blind to: every one not named in `evaluation.unblinded`."""
    return [f for f in protocol.design.factors if f not in protocol.evaluation.unblinded]


def shown_task_fields(protocol: Protocol) -> dict[str, dict[str, Scalar | None]]:
    """Per task id, the fields `evaluation.show_task_fields` shows judges beside each item (None
    where the task lacks one). Task data, the same in every cell: nothing of the condition."""
    names = protocol.evaluation.show_task_fields
    return {t.id: {n: t.fields.get(n) for n in names} for t in protocol.materials.tasks}


def template_context(
    protocol: Protocol, cell: Cell, replicate: int, task: Task, plant: Plant | None, *, blind: bool
) -> dict[str, Any]:
    """What the templates see: the subject's view, or (`blind`) the evaluator's.

    The evaluator's context is built without the level of any blinded factor, without the
    subject and with every `text.<factor>` empty (a task's `fields` stay: they belong to the
    task, which every cell shares), so the evaluator view of an item cannot depend
    on a blinded condition: a template that reads one fails to render (`validate` says which).
    Only the factors in `evaluation.unblinded` keep their level there.
    """
    levels = dict(cell.levels)
    if blind:
        levels = {f: lv for f, lv in levels.items() if f in protocol.evaluation.unblinded}
        text = dict.fromkeys(protocol.design.factors, "")
    else:
        text = {f: protocol.materials.level_text.get(f, {}).get(lv, "") for f, lv in levels.items()}
    document = task.document
    if plant is not None and protocol.materials.plant_into == "document":
        document = insert_plant(document, plant.text, plant_key(protocol, task, replicate))
    ctx = {
        **levels,
        "factors": levels,
        "text": text,
        "task": task.model_dump(exclude={"fields"}),
        # task data, the same in every cell: judges see what the subject was shown of it
        "fields": dict(task.fields),
        "plant": plant.model_dump() if plant else None,
        "document": document,
        "replicate": replicate,
    }
    return ctx if blind else {**ctx, "subject": cell.subject}


def _stimulus(
    protocol: Protocol, cell: Cell, replicate: int, task: Task, plant: Plant | None
) -> Stimulus:
    plant = plant if _planted(protocol, cell) else None
    t = protocol.materials.templates
    ctx = template_context(protocol, cell, replicate, task, plant, blind=False)
    blind = template_context(protocol, cell, replicate, task, plant, blind=True)
    common = {
        "item_id": f"{cell.key}.{replicate:03d}",
        "cell": cell,
        "replicate": replicate,
        "task_id": task.id,
        "plant_id": plant.id if plant else None,
    }
    if isinstance(t, Templates):
        return Stimulus(
            **common,
            system=render(t.system, ctx).strip(),
            user=render(t.user, ctx).strip(),
            blind_user=render(t.user, blind).strip(),
        )
    into = protocol.materials.plant_into
    at = None
    if plant is not None and into != "document":
        at = (into, plant.text, plant_key(protocol, task, replicate))
    system = next((render(x.source or "", ctx).strip() for x in t if x.role == "system"), "")
    if at is not None and t[into].role == "system":
        system = insert_plant(system, plant.text, at[2])
    turns, blind_turns = _render_turns(t, ctx, at), _render_turns(t, blind, at)
    return Stimulus(
        **common,
        system=system,
        user=_last_said(turns),
        blind_user=_last_said(blind_turns),
        turns=turns,
        blind_turns=blind_turns,
    )
