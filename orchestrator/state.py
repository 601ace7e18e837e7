"""Graph state: ids, counts and stage status only. Records live in records.sqlite."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict


class RunState(TypedDict, total=False):
    stage: str
    """The last stage that finished."""
    items: int
    responses: int
    batches_done: Annotated[list[str], operator.add]
    """Evaluator batches finished in this run; parallel batch nodes append to it."""
    decisions: Annotated[dict[str, str], operator.or_]
    """Checkpoint -> approve | reject, or retry: the evaluate checkpoint sent its stage back for
    pending items (nodes/checkpoint.py)."""


class BatchState(TypedDict):
    """What one evaluator batch node receives through `Send`."""

    batch_id: str


STAGES = ["design", "collect", "screen", "probe", "evaluate", "analyze", "report"]
"""The stages in the order they run (SUMMARY.md lists progress in this order)."""
