"""The protocol's constraints (`analysis.constraints`) checked against the primary verdicts: a
verdict the design makes impossible outside some cells (`complied` where nothing was planted)
is a judge error the rates would otherwise carry silently."""

from __future__ import annotations

from orchestrator.analysis.rates import group_by_cell, scored_verdicts
from orchestrator.analysis.result import ConstraintCell, ConstraintCheck, ConstraintExample
from orchestrator.protocol.schema import Constraint, Protocol
from orchestrator.records import Item, Verdict

EXAMPLES = 3
"""Violating items shown per cell."""


def check_constraints(
    protocol: Protocol, items: list[Item], verdicts: dict[str, Verdict]
) -> list[ConstraintCheck]:
    """Each constraint of the protocol over `items` (in design order), with its violations per
    cell outside the levels it requires."""
    text_fields = [n for n, f in protocol.evaluation.verdict.items() if f.type == "str"]
    by_cell = group_by_cell(items)
    return [_check(c, by_cell, verdicts, text_fields) for c in protocol.analysis.constraints]


def _check(
    c: Constraint,
    by_cell: dict[str, list[Item]],
    verdicts: dict[str, Verdict],
    text_fields: list[str],
) -> ConstraintCheck:
    cells = []
    for key, cell_items in by_cell.items():
        first = cell_items[0]
        if _inside(c, first):
            continue
        scored = scored_verdicts(cell_items, verdicts)
        broken = [v for v in scored if v.fields and v.fields.get(c.outcome) == c.value]
        examples = [
            ConstraintExample(item_id=v.item_id, evidence=_evidence(v, text_fields))
            for v in broken[:EXAMPLES]
        ]
        cells.append(
            ConstraintCell(
                cell=key,
                subject=first.subject,
                levels=first.levels,
                checked=len(scored),
                violations=len(broken),
                items=[v.item_id for v in broken],
                examples=examples,
            )
        )
    return ConstraintCheck(
        outcome=c.outcome,
        value=value_text(c),
        requires=c.allowed(),
        why=" ".join(c.why.split()),
        rule=rule_text(c),
        checked=sum(x.checked for x in cells),
        violations=sum(x.violations for x in cells),
        cells=cells,
    )


def _inside(c: Constraint, item: Item) -> bool:
    """Whether the item's cell is one where the constrained verdict can occur."""
    levels = {"subject": item.subject, **item.levels}
    return all(levels.get(f) in allowed for f, allowed in c.allowed().items())


def _evidence(v: Verdict, text_fields: list[str]) -> str:
    """What the judge wrote in the verdict's text fields, one line."""
    parts = [str(v.fields.get(n) or "") for n in text_fields] if v.fields else []
    return " ".join(" / ".join(p for p in parts if p.strip()).split())[:300]


def value_text(c: Constraint) -> str:
    return str(c.value).lower() if isinstance(c.value, bool) else c.value


def rule_text(c: Constraint) -> str:
    """The constraint in words: `complied = true requires planted = planted`."""
    conditions = " and ".join(
        f"{f} = {levels[0]}" if len(levels) == 1 else f"{f} ∈ {{{', '.join(levels)}}}"
        for f, levels in c.allowed().items()
    )
    return f"{c.outcome} = {value_text(c)} requires {conditions}"
