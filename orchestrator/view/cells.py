"""A cell's items with each evaluator's verdict, and the filters the cell page offers: by
outcome (the items behind a rate's k), by agreement (items two evaluators judged differently),
by flag (a screening flag or a raised flag naming the item).

Which verdict counts and what is positive are the analysis' rules (`primary_verdicts`,
`is_scored`, an outcome `is True`), so the items behind a rate are exactly the ones it counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

from orchestrator.analysis.rates import is_scored
from orchestrator.records import Item, Verdict
from orchestrator.view.queries import RunData

Agreement = Literal["agree", "disagree"]


@dataclass(frozen=True)
class Filters:
    """The cell page's query: `outcome` is an outcome's name (judged positive), `not:<name>`
    (judged negative) or `unscored`; `agreement` and `flag` as the module says. Empty: any."""

    outcome: str = ""
    agreement: str = ""
    flag: str = ""

    def query(self, **change: str) -> str:
        """This query string with some values changed (for links that keep the others)."""
        values = {**vars(self), **change}
        return urlencode({k: v for k, v in values.items() if v})


@dataclass(frozen=True)
class Row:
    item: Item
    counted: Verdict | None
    verdicts: list[Verdict]
    screen: list[str]
    flags: list[str]
    """Kinds of the raised flags that name this item."""
    agreement: Agreement | None
    """On the primary outcome, among the item's scored verdicts of every role; None when it
    has fewer than two."""

    def outcome(self, name: str) -> bool | None:
        """The counted verdict's value of `name`; None when the item is unscored."""
        if not is_scored(self.counted):
            return None
        return self.counted.fields.get(name) is True  # type: ignore[union-attr]


def agreement(verdicts: list[Verdict], primary: str) -> Agreement | None:
    values = [v.fields.get(primary) is True for v in verdicts if is_scored(v)]  # type: ignore[union-attr]
    if len(values) < 2:
        return None
    return "agree" if len(set(values)) == 1 else "disagree"


def cell_rows(run: RunData, cell: str, primary: str) -> list[Row]:
    """Every item of `cell`, by id, with what the filters need."""
    counted = run.counted()
    screen = run.screen()
    flags = run.flags()
    by_item: dict[str, list[Verdict]] = {}
    for v in run.verdicts():
        by_item.setdefault(v.item_id, []).append(v)
    rows = []
    for item in sorted((i for i in run.items() if i.cell == cell), key=lambda i: i.id):
        mine = by_item.get(item.id, [])
        rows.append(
            Row(
                item=item,
                counted=counted.get(item.id),
                verdicts=mine,
                screen=screen.get(item.id, []),
                flags=sorted({f.kind for f in flags if item.id in f.items}),
                agreement=agreement(mine, primary),
            )
        )
    return rows


def keep(row: Row, f: Filters) -> bool:
    """Whether `row` passes every filter that is set."""
    if f.outcome == "unscored":
        if is_scored(row.counted):
            return False
    elif f.outcome.startswith("not:"):
        if row.outcome(f.outcome[4:]) is not False:
            return False
    elif f.outcome and row.outcome(f.outcome) is not True:
        return False
    if f.agreement and row.agreement != f.agreement:
        return False
    return not f.flag or f.flag in row.screen or f.flag in row.flags


def flag_choices(rows: list[Row]) -> list[str]:
    """The flags that occur among `rows` (screening kinds, then raised flags' kinds)."""
    return sorted({x for r in rows for x in (*r.screen, *r.flags)})
