"""False alarms (the primary outcome where nothing was planted) and the missing data: how many
items went unscored per cell, why, and how far each rate could move if they had been scored."""

from __future__ import annotations

from collections import Counter

from orchestrator.analysis.rates import count, is_scored, rate
from orchestrator.analysis.result import Bounds, FalseAlarm, Missing
from orchestrator.records import Item, Verdict, VerdictStatus


def false_alarms(
    outcome: str, by_cell: dict[str, list[Item]], verdicts: dict[str, Verdict]
) -> list[FalseAlarm]:
    """`outcome` rate in the cells with nothing planted, when other cells had plants."""
    if not any(i.plant_id is not None for cell in by_cell.values() for i in cell):
        return []
    out = []
    for key, cell in by_cell.items():
        if all(i.plant_id is None for i in cell):
            r = rate(*count(cell, verdicts, outcome))
            first = cell[0]
            alarm = FalseAlarm(cell=key, subject=first.subject, levels=first.levels, **dict(r))
            out.append(alarm)
    return out


def bounds(k: int, n: int, u: int) -> Bounds:
    """A rate of k in n scored items, and its values if all u unscored ones were negative
    (`low`) or positive (`high`)."""
    total = n + u
    return Bounds(
        observed=k / n if n else None,
        low=k / total if total else None,
        high=(k + u) / total if total else None,
    )


def missing(
    outcomes: list[str], by_cell: dict[str, list[Item]], verdicts: dict[str, Verdict]
) -> list[Missing]:
    """Per cell: how many items went unscored, why, and how far each rate could move."""
    out = []
    for key, cell in by_cell.items():
        reasons = Counter(
            _why_unscored(verdicts.get(i.id)) for i in cell if not is_scored(verdicts.get(i.id))
        )
        u = sum(reasons.values())
        out.append(
            Missing(
                cell=key,
                subject=cell[0].subject,
                levels=cell[0].levels,
                items=len(cell),
                scored=len(cell) - u,
                unscored=u,
                reasons=dict(reasons),
                bounds={o: bounds(*count(cell, verdicts, o), u) for o in outcomes},
            )
        )
    return out


def _why_unscored(v: Verdict | None) -> str:
    if v is None:
        return "no verdict"
    if v.reason:
        return v.reason
    return "scored without fields" if v.status == VerdictStatus.SCORED else "no reason recorded"
