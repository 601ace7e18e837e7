"""screen: deterministic data-quality checks on every response, before anyone judges them.

Flags: errored (no answer after retries), empty, truncated (stop_reason max_tokens), refused, and
duplicate (the same text as another item's response); the protocol's `screen:` section says which
to flag (short factual answers repeat by design). Counts per cell go to LOG.md, and each kind that
occurs becomes a data_quality flag that the human sees at the next checkpoint.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from langgraph.runtime import Runtime

from orchestrator.context import RunContext
from orchestrator.nodes.conversation import item_responses
from orchestrator.progress import finish_stage
from orchestrator.protocol.schema import Screen
from orchestrator.records import Response
from orchestrator.state import RunState

KINDS = ["errored", "empty", "truncated", "refused", "duplicate"]
REFUSAL_WINDOW = 300
"""Characters at the start of an answer searched for a refusal."""


def refusal_patterns(rules: Screen) -> list[re.Pattern[str]]:
    return [re.compile(p, re.IGNORECASE | re.DOTALL) for p in rules.refusals]


def screen_response(
    r: Response | None, rules: Screen, refusals: list[re.Pattern[str]]
) -> list[str]:
    if r is None or r.error is not None:
        return ["errored"]
    flags = []
    if rules.empty and not r.text.strip():
        flags.append("empty")
    if rules.truncated and r.stop_reason == "max_tokens":
        flags.append("truncated")
    opening = r.text.strip()[:REFUSAL_WINDOW]
    if r.stop_reason == "refusal" or any(p.search(opening) for p in refusals):
        flags.append("refused")
    return flags


def screen_responses(
    item_ids: list[str], responses: dict[str, Response], rules: Screen
) -> dict[str, list[str]]:
    """Each item's flags, in the order of KINDS; an item with none is clean."""
    refusals = refusal_patterns(rules)
    results = {i: screen_response(responses.get(i), rules, refusals) for i in item_ids}
    if not rules.duplicates.flag:
        return results
    by_text: dict[str, list[str]] = defaultdict(list)
    for i in item_ids:
        r = responses.get(i)
        if r is None or r.error is not None:
            continue
        text = " ".join(r.text.split())
        if text and len(text) >= rules.duplicates.min_length:
            by_text[text.lower()].append(i)
    for ids in by_text.values():
        if len(ids) > 1:
            for item_id in ids:
                results[item_id].append("duplicate")
    return results


def screen(state: RunState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    items = ctx.run.records.items()
    # an item whose conversation stopped at a generated turn has that turn's failure
    responses = item_responses(ctx.run.records, items)
    results = screen_responses([i.id for i in items], responses, ctx.protocol.screen)
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
