"""What a run has used so far: API calls, tokens and cost, summed over the call ledger."""

from __future__ import annotations

from orchestrator.rundir import RunDir


def usage_totals(run: RunDir) -> dict[str, float]:
    usage = run.records.usage()
    return {
        "calls": sum(u["calls"] for u in usage.values()),
        "input_tokens": sum(u["input_tokens"] or 0 for u in usage.values()),
        "output_tokens": sum(u["output_tokens"] or 0 for u in usage.values()),
        "cost_usd": sum(u["cost_usd"] or 0.0 for u in usage.values()),
        "unpriced": sum(u["unpriced"] or 0 for u in usage.values()),
    }
