"""Items waiting for a judge: the evaluators' verdicts recorded *pending* because the judge API
kept failing. One rule for every place that asks — the evaluate checkpoint, `--yes`, the panel,
SUMMARY.md, `research approve` — so none of them can approve past what another still waits on.
"""

from __future__ import annotations

from orchestrator.records import Records


def pending_text(records: Records) -> str | None:
    """What waits for a judge, in a line — how many items (any role: an item's second look or
    another evaluator's overlap verdict waits too) and why — or None when nothing does."""
    waiting = records.pending()
    if not waiting:
        return None
    items = len({v.item_id for v in waiting})
    why = (waiting[0].reason or "").removeprefix("pending: ") or "the judge API kept failing"
    return f"{items} items pending ({why})"
