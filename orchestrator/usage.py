"""What a run has used so far: API calls, tokens and cost, summed over the call ledger, and the
calls a killed process may have paid for without recording them (estimated)."""

from __future__ import annotations

from orchestrator.records import PossiblyPaid
from orchestrator.rundir import RunDir


def usage_totals(run: RunDir) -> dict[str, float]:
    """Recorded calls, tokens and cost; `possibly_paid` and `possibly_paid_usd` add the calls
    a killed process left unrecorded (zero when there are none)."""
    usage = run.records.usage()
    possibly = run.records.possibly_paid().values()
    return {
        "calls": sum(u["calls"] for u in usage.values()),
        "input_tokens": sum(u["input_tokens"] or 0 for u in usage.values()),
        "output_tokens": sum(u["output_tokens"] or 0 for u in usage.values()),
        "cost_usd": sum(u["cost_usd"] or 0.0 for u in usage.values()),
        "unpriced": sum(u["unpriced"] or 0 for u in usage.values()),
        "possibly_paid": sum(p.calls for p in possibly),
        "possibly_paid_usd": sum(p.cost_usd for p in possibly),
    }


def possibly_paid_text(by_stage: dict[str, PossiblyPaid]) -> str | None:
    """One sentence on the calls in flight when a process was killed, or None when there were
    none: how many, their estimated cost, and by stage."""
    if not by_stage:
        return None
    calls = sum(p.calls for p in by_stage.values())
    cost = sum(p.cost_usd for p in by_stage.values())
    unpriced = sum(p.unpriced for p in by_stage.values())
    stages = ", ".join(f"{p.stage} {p.calls}" for p in by_stage.values())
    more = f" (+{unpriced} unpriced)" if unpriced else ""
    return (
        f"{calls} call{'s' if calls != 1 else ''} possibly paid (in flight when a process was "
        f"killed or interrupted, never recorded): ≈ ${cost:.4f}{more}; by stage: {stages}"
    )
