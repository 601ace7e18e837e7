"""screen: deterministic data-quality checks on every response, before anyone judges them.

Flags: errored (no answer after retries), empty, truncated (stop_reason max_tokens), refused, and
duplicate (the same text as another item's response). Counts per cell go to LOG.md, and each kind
that occurs becomes a data_quality flag that the human sees at the next checkpoint.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from langgraph.runtime import Runtime

from orchestrator.context import RunContext
from orchestrator.progress import finish_stage
from orchestrator.records import Response
from orchestrator.state import RunState

REFUSAL = re.compile(
    r"^\W*(I'?m sorry,? but |I apologi[sz]e,? but |Sorry,? but )?"
    r"(I can(no|')t|I cannot|I won'?t|I'?m (not able|unable) to|I will not|I must decline)"
    r"\b.{0,60}\b(help|assist|comply|do that|provide|fulfil|fulfill|with (this|that))",
    re.IGNORECASE | re.DOTALL,
)
KINDS = ["errored", "empty", "truncated", "refused", "duplicate"]


def screen_response(r: Response | None) -> list[str]:
    if r is None or r.error is not None:
        return ["errored"]
    flags = []
    if not r.text.strip():
        flags.append("empty")
    if r.stop_reason == "max_tokens":
        flags.append("truncated")
    if r.stop_reason == "refusal" or REFUSAL.match(r.text.strip()[:300]):
        flags.append("refused")
    return flags


def screen(state: RunState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    items = ctx.run.records.items()
    responses = ctx.run.records.responses()
    results = {i.id: screen_response(responses.get(i.id)) for i in items}
    by_text: dict[str, list[str]] = defaultdict(list)
    for i in items:
        r = responses.get(i.id)
        if r is not None and r.error is None and r.text.strip():
            by_text[" ".join(r.text.split()).lower()].append(i.id)
    for ids in by_text.values():
        if len(ids) > 1:
            for item_id in ids:
                results[item_id].append("duplicate")
    ctx.run.records.set_screen(
        {i: (f, responses[i].text if i in responses else "") for i, f in results.items()}
    )
    cell_of = {i.id: i.cell for i in items}
    per_cell: dict[str, Counter] = defaultdict(Counter)
    for item_id, flags in results.items():
        per_cell[cell_of[item_id]].update(flags or ["clean"])
    lines = [
        f"- {cell}: " + ", ".join(f"{k} {c[k]}" for k in ["clean", *KINDS] if c[k])
        for cell, c in sorted(per_cell.items())
    ]
    totals = Counter(f for flags in results.values() for f in flags)
    for kind in KINDS:
        if totals[kind]:
            flagged = [i for i, f in results.items() if kind in f]
            text = f"{totals[kind]} of {len(items)} responses {kind}"
            if ctx.run.records.add_flag("screen", "data_quality", "screen", flagged, text):
                ctx.log("screen", "flag", f"data_quality: {text}: {', '.join(flagged[:10])}")
    clean = sum(1 for f in results.values() if not f)
    counts = {"clean": clean, **{k: totals[k] for k in KINDS if totals[k]}}
    finish_stage(
        ctx.run,
        "screen",
        counts,
        f"Screened {len(items)} responses; per cell:\n" + "\n".join(lines),
    )
    return {"stage": "screen"}
