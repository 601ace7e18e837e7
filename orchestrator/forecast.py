"""What the next stage will cost, shown at a checkpoint before anything is spent."""

from __future__ import annotations

from agents.pricing import known, price_usd
from orchestrator.protocol.schema import Protocol
from orchestrator.records import Records

CHARS_PER_TOKEN = 4  # a rough English average; the forecast is a range, not a promise


def forecast(protocol: Protocol, records: Records, checkpoint: str) -> str:
    if checkpoint == "design":
        return _collect(protocol, records)
    if checkpoint == "evaluate":
        return "analyze and report run locally: no API calls."
    return "Nothing further: approving closes the run."


def _collect(protocol: Protocol, records: Records) -> str:
    subjects = {s.id: s for s in protocol.subjects}
    lines = []
    for sid, s in subjects.items():
        items = [i for i in records.items() if i.subject == sid]
        tin = sum(len(i.system) + len(i.user) for i in items) // CHARS_PER_TOKEN
        tout = len(items) * s.params.max_tokens
        if s.provider == "local":
            cost = "free (local worker)"
        elif known(s.model):
            cost = f"at most ${price_usd(s.model, tin, tout):.2f}"
        else:
            cost = "cost unknown (model not in the price table)"
        lines.append(
            f"collect: {len(items)} calls to {s.model}, ~{tin:,} input tokens, "
            f"≤{tout:,} output tokens, {cost}"
        )
    j = protocol.evaluation.judge
    lines.append(
        f"then evaluate: judged by {j.model} in batches of {protocol.evaluation.batch_size}"
    )
    return "\n".join(lines)
