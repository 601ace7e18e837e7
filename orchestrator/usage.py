"""What a run has used so far: API calls, tokens and cost, summed over the call ledger, and the
calls a killed process may have paid for without recording them (estimated)."""

from __future__ import annotations

from orchestrator.records import PossiblyPaid
from orchestrator.rundir import RunDir


def usage_totals(run: RunDir) -> dict[str, float]:
    """Recorded calls, tokens and cost; `possibly_paid` and `possibly_paid_usd` add the calls
    a killed process left unrecorded (zero when there are none)."""
    usage = run.records.usage()
    possibly = PossiblyPaid.total(run.records.possibly_paid().values())
    return {
        "calls": sum(u["calls"] for u in usage.values()),
        "input_tokens": sum(u["input_tokens"] or 0 for u in usage.values()),
        "output_tokens": sum(u["output_tokens"] or 0 for u in usage.values()),
        "cost_usd": sum(u["cost_usd"] or 0.0 for u in usage.values()),
        "unpriced": sum(u["unpriced"] or 0 for u in usage.values()),
        "possibly_paid": possibly.calls,
        "possibly_paid_usd": possibly.cost_usd,
    }


def possibly_paid_text(by_stage: dict[str, PossiblyPaid]) -> str | None:
    """One sentence on the calls in flight when a process was killed, or None when there were
    none: how many, their estimated cost, and by stage."""
    if not by_stage:
        return None
    t = PossiblyPaid.total(by_stage.values())
    stages = ", ".join(f"{p.stage} {p.calls}" for p in by_stage.values())
    more = f" (+{t.unpriced} unpriced)" if t.unpriced else ""
    return (
        f"{t.calls} call{'s' if t.calls != 1 else ''} possibly paid (in flight when a process "
        f"was killed or interrupted, never recorded): ≈ ${t.cost_usd:.4f}{more}; by stage: "
        f"{stages}"
    )
