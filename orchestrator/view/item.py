"""One item as a researcher reads it: its prompt with the plant marked, the response with every
evaluator's quotes marked, each verdict, the flags and probe readouts on it, and the pairs it is
part of (two evaluators on it, one evaluator twice, responses screened as duplicates)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from orchestrator.protocol.materials import Task
from orchestrator.records import FlagRow, Item, ProbeRow, Verdict, VerdictRole
from orchestrator.view.marks import Span, find_quote, marked
from orchestrator.view.queries import RunData

PLANT = "plant"
EVIDENCE = "evidence"


@dataclass(frozen=True)
class Part:
    """One part of the prompt (the system prompt, the user message, a turn), marked."""

    label: str
    html: Markup


@dataclass(frozen=True)
class Quote:
    """A text field of a verdict and whether it was found in the response."""

    field: str
    text: str
    found: bool


@dataclass(frozen=True)
class VerdictView:
    verdict: Verdict
    counted: bool
    """Whether this is the verdict the item counts with in the rates."""
    quotes: list[Quote]

    @property
    def who(self) -> str:
        v = self.verdict
        return f"{v.evaluator} ({v.role}{', second look' if v.copy else ''})"


@dataclass(frozen=True)
class Duplicate:
    """Another item whose response the screen stage found identical to this one's."""

    item_id: str
    cell: str
    text: str


@dataclass
class ItemView:
    item: Item
    task: Task | None
    plant: str | None
    """The planted text, when the item carries a plant the protocol names."""
    plant_found: bool
    prompt: list[Part]
    response: str | None
    response_html: Markup
    response_error: str | None
    verdicts: list[VerdictView]
    screen: list[str]
    flags: list[FlagRow]
    probes: list[ProbeRow]
    pairs: list[tuple[VerdictView, VerdictView]] = field(default_factory=list)
    """(the counted verdict, an overlap or second-look verdict on the same item)."""
    duplicates: list[Duplicate] = field(default_factory=list)
    text_fields: list[str] = field(default_factory=list)


def _text_fields(run: RunData, verdicts: list[Verdict]) -> list[str]:
    """The verdict fields that may quote the response: the protocol's `str` fields (without a
    protocol, every field whose value is a string)."""
    if run.protocol is not None:
        schema = run.protocol.evaluation.verdict
        return [name for name, f in schema.items() if f.type == "str"]
    names = {k for v in verdicts for k, x in (v.fields or {}).items() if isinstance(x, str)}
    return sorted(names)


def _prompt_parts(item: Item, generated: list[str]) -> list[tuple[str, str]]:
    """The subject's input as labelled texts: the system prompt, then the user message, or each
    turn of a conversation (a generated turn as the subject wrote it)."""
    parts = [("system", item.system)] if item.system else []
    if not item.turns:
        return [*parts, ("user", item.user)]
    replies = iter(generated)
    for n, turn in enumerate(item.turns, 1):
        if turn.text is None:
            parts.append((f"turn {n}: assistant (generated)", next(replies, "")))
        elif turn.role == "tool_use":
            call = f"[tool call: {turn.tool}({turn.input or {}})]"
            parts.append((f"turn {n}: tool_use {turn.tool}", f"{turn.text}\n{call}".strip()))
        else:
            label = f"turn {n}: {turn.role}" + (f" {turn.tool}" if turn.tool else "")
            parts.append((label, turn.text))
    return parts


def _plant_text(run: RunData, item: Item) -> str | None:
    if run.protocol is None or item.plant_id is None:
        return None
    plant = next((p for p in run.protocol.materials.plants if p.id == item.plant_id), None)
    return plant.text.strip() if plant is not None else None


def item_view(run: RunData, item: Item) -> ItemView:
    rec = run.records
    assert rec is not None  # an item was read from it
    responses = rec.responses()
    generated = [
        responses_k.text
        for k in range(1, item.generated() + 1)
        if (responses_k := rec.responses(f"subject:turn-{k}").get(item.id)) is not None
    ]
    plant = _plant_text(run, item)
    prompt, plant_found = [], False
    for label, text in _prompt_parts(item, generated):
        at = find_quote(text, plant) if plant else None
        plant_found = plant_found or at is not None
        spans = [Span(*at, by="planted instruction")] if at else []
        prompt.append(Part(label, marked(text, spans, PLANT)))

    response = responses.get(item.id)
    text = response.text if response is not None else None
    counted = run.counted().get(item.id)
    mine = [v for v in run.verdicts() if v.item_id == item.id]
    names = _text_fields(run, mine)
    views, spans = [], []
    for v in mine:
        quotes = []
        for name in names:
            value = (v.fields or {}).get(name)
            if not isinstance(value, str) or not value.strip():
                continue
            at = find_quote(text, value) if text is not None else None
            quotes.append(Quote(name, value, at is not None))
            if at is not None:
                spans.append(Span(*at, by=f"{v.evaluator}: {name}"))
        views.append(VerdictView(v, v == counted, quotes))

    screen = run.screen().get(item.id, [])
    view = ItemView(
        item=item,
        task=_task(run, item),
        plant=plant,
        plant_found=plant_found,
        prompt=prompt,
        response=text,
        response_html=marked(text, spans, EVIDENCE) if text is not None else Markup(""),
        response_error=response.error if response is not None else None,
        verdicts=views,
        screen=screen,
        flags=[f for f in run.flags() if item.id in f.items],
        probes=[p for p in rec.probe_results() if p.item_id == item.id],
        text_fields=names,
    )
    first = next((x for x in views if x.counted), None)
    if first is not None:
        view.pairs = [(first, x) for x in views if x.verdict.role != VerdictRole.PRIMARY]
    if "duplicate" in screen and text is not None:
        view.duplicates = _duplicates(run, item, text, responses)
    return view


def _task(run: RunData, item: Item) -> Task | None:
    if run.protocol is None:
        return None
    return next((t for t in run.protocol.materials.tasks if t.id == item.task_id), None)


def _duplicates(run: RunData, item: Item, text: str, responses: dict[str, Any]) -> list[Duplicate]:
    """The other items the screen stage flagged as duplicates of this one: the same response
    text, whitespace and case aside (the screen stage's own comparison)."""
    same = " ".join(text.split()).lower()
    screen = run.screen()
    out = []
    for other in run.items():
        r = responses.get(other.id)
        if other.id == item.id or r is None or "duplicate" not in screen.get(other.id, []):
            continue
        if " ".join(r.text.split()).lower() == same:
            out.append(Duplicate(other.id, other.cell, r.text))
    return out
