"""Per-cell outcome rates with Wilson intervals, and the verdict bookkeeping every other part of
the analysis shares: which verdict counts for an item, and whether it is scored.

Unscored items are counted per cell and kept out of the denominator: they are missing data, not
negatives (missing.py bounds what they could change).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from orchestrator.analysis.levels import cell_levels
from orchestrator.analysis.result import Cell, CellRate, Rate
from orchestrator.protocol.schema import Protocol
from orchestrator.protocol.stimuli import cells
from orchestrator.records import Item, Verdict, VerdictStatus

ALPHA = 0.05
"""Level of the corrected tests (`rejected`) and of every interval (95%)."""


def rate(k: int, n: int) -> Rate:
    """k of n with its Wilson 95% interval."""
    # imported here: statsmodels and scipy cost ~1.5 s of start-up that only this stage needs
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return Rate(n=0, k=0, rate=None, lo=None, hi=None)
    lo, hi = proportion_confint(k, n, alpha=ALPHA, method="wilson")
    return Rate(n=n, k=k, rate=k / n, lo=float(lo), hi=float(hi))


def primary_verdicts(verdicts: list[Verdict]) -> dict[str, Verdict]:
    """One verdict per item: a scored one if any evaluator scored it (first by evaluator name)."""
    out: dict[str, Verdict] = {}
    for v in sorted(
        verdicts, key=lambda v: (v.item_id, v.status != VerdictStatus.SCORED, v.evaluator)
    ):
        out.setdefault(v.item_id, v)
    return out


def in_design_order(protocol: Protocol, items: list[Item]) -> list[Item]:
    """`items` cell by cell as the protocol crosses its subjects and factor levels (the order of
    the plots and every table), not alphabetically; within a cell, by id. A cell the protocol
    does not have (an item of an older design) comes last."""
    order = {c.key: n for n, c in enumerate(cells(protocol))}
    return sorted(items, key=lambda i: (order.get(i.cell, len(order)), i.cell, i.id))


def group_by_cell(items: list[Item]) -> dict[str, list[Item]]:
    """Items by cell key, in the order given."""
    by_cell: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_cell[item.cell].append(item)
    return by_cell


def is_scored(v: Verdict | None) -> bool:
    return v is not None and v.status == VerdictStatus.SCORED and v.fields is not None


def scored_verdicts(items: list[Item], verdicts: dict[str, Verdict]) -> list[Verdict]:
    """The scored verdicts of `items`, in their order."""
    return [verdicts[i.id] for i in items if is_scored(verdicts.get(i.id))]


def positives(scored: list[Verdict], outcome: str) -> int:
    """How many of the `scored` verdicts have `outcome` true."""
    return sum(1 for v in scored if v.fields and v.fields.get(outcome) is True)


def count(items: list[Item], verdicts: dict[str, Verdict], outcome: str) -> tuple[int, int]:
    """(positives, scored) among `items`."""
    scored = scored_verdicts(items, verdicts)
    return positives(scored, outcome), len(scored)


def cell_rates(
    protocol: Protocol,
    by_cell: dict[str, list[Item]],
    verdicts: dict[str, Verdict],
    screen: dict[str, list[str]],
) -> list[Cell]:
    """Each cell's outcome rates, enum tallies, level distributions, means and screening
    flags."""
    enums = [n for n, f in protocol.evaluation.verdict.items() if f.type == "enum"]
    cells = []
    for key, cell_items in by_cell.items():
        scored = scored_verdicts(cell_items, verdicts)
        unscored = len(cell_items) - len(scored)
        outcomes = {
            o: CellRate(**rate(positives(scored, o), len(scored)).model_dump(), unscored=unscored)
            for o in protocol.outcomes
        }
        tallies = {
            e: dict(Counter(str(v.fields.get(e)) for v in scored if v.fields)) for e in enums
        }
        distributions, means = cell_levels(protocol, scored)
        flags = Counter(f for i in cell_items for f in screen.get(i.id, []))
        first = cell_items[0]
        cells.append(
            Cell(
                cell=key,
                subject=first.subject,
                levels=first.levels,
                items=len(cell_items),
                outcomes=outcomes,
                enums=tallies,
                distributions=distributions,
                means=means,
                screen=dict(flags),
            )
        )
    return cells
