"""Which items `research label` offers, and in what order.

Every item with a scored verdict is put in a stratum: its cell × the judges' verdict on the
primary outcome. The strata are taken in turn (a seeded order of strata, a seeded order within
each), so the first N items hold about as many of each stratum as it has to give: a cell's rare
positives, and the judges' rare false alarms, get labelled instead of drowned by the common
negatives. The analysis weights each labelled item back by its stratum's size
(analysis/calibration.py), so this over-sampling does not bias what it estimates.

The first N of that order is the sample (a larger N keeps the items of a smaller one). It is
shown in an order of its own, seeded by item id alone: a labeller cannot read a stratum, a cell
or the judges' verdict from where an item comes.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict

from orchestrator.records import Item, Verdict, VerdictStatus


def stratified_order(
    items: list[Item], verdicts: dict[str, Verdict], primary: str, seed: int
) -> list[str]:
    """Ids of every item with a scored verdict, strata taken in turn."""
    strata: dict[tuple[str, bool], list[str]] = defaultdict(list)
    for item in items:
        v = verdicts.get(item.id)
        if v is not None and v.status == VerdictStatus.SCORED and v.fields is not None:
            strata[(item.cell, v.fields.get(primary) is True)].append(item.id)
    rng = random.Random(f"label:{seed}")
    keys = sorted(strata)
    rng.shuffle(keys)
    queues = [sorted(strata[k]) for k in keys]
    for q in queues:
        rng.shuffle(q)
    order: list[str] = []
    for depth in range(max((len(q) for q in queues), default=0)):
        order += [q[depth] for q in queues if depth < len(q)]
    return order


def shown_order(ids: list[str], seed: int) -> list[str]:
    """`ids` in the order a labeller sees them: by a seeded hash of the id, nothing else."""
    return sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
