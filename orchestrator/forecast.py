"""Forecasts shown at a checkpoint before anything is spent.

At the design checkpoint: how precise the run will be (the expected 95% interval half-width per
cell and per contrast, at the run's n and the protocol's `analysis.assumed_rates`) and what it
will cost (tokens and dollars, with subjects called one by one or through the Message Batches
API). Written to artifacts/forecast.json so the report can set it against what happened.
"""

from __future__ import annotations

import json
import math
from typing import Any

from agents.pricing import known, price_usd
from memory import utc_stamp
from orchestrator.analysis import arm_items, group_by_cell, in_design_order
from orchestrator.protocol.schema import ModelRef, Protocol
from orchestrator.records import Item, Records

CHARS_PER_TOKEN = 4  # a rough English average; the forecast is a range, not a promise
EXPECTED_OUTPUT_SHARE = 0.5
"""Share of a subject's max_tokens an answer is assumed to use (the cap is the upper bound)."""
VERDICT_TOKENS = 120
"""Output tokens per verdict (fields, a reason, an evidence quote) in the judge's tool calls."""
TOOL_PREFIX_TOKENS = 1_500
"""Tool definitions and instructions in every evaluator's cached prefix, besides the protocol."""
DEFAULT_RATE = 0.5
"""With no assumed rate the forecast takes 0.5, where intervals are widest."""


def assumed_rate(protocol: Protocol, levels: dict[str, str], subject: str) -> float:
    """The most specific `analysis.assumed_rates` entry matching a cell; later ones win ties."""
    where = {**levels, "subject": subject}
    best: tuple[int, float] | None = None
    for a in protocol.analysis.assumed_rates:
        if all(where.get(k) == v for k, v in a.when.items()):
            if best is None or len(a.when) >= best[0]:
                best = (len(a.when), a.rate)
    return DEFAULT_RATE if best is None else best[1]


def wilson_half_width(p: float, n: int) -> float:
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(p * n, n, alpha=0.05, method="wilson")
    return float(hi - lo) / 2


def newcombe_half_width(p1: float, n1: int, p0: float, n0: int) -> float:
    from statsmodels.stats.proportion import confint_proportions_2indep

    lo, hi = confint_proportions_2indep(p1 * n1, n1, p0 * n0, n0, method="newcomb", compare="diff")
    return float(hi - lo) / 2


def design_forecast(protocol: Protocol, items: list[Item]) -> dict[str, Any]:
    """Precision and cost of the run about to start, from its rendered items."""
    cells = []
    for key, its in group_by_cell(in_design_order(protocol, items)).items():
        p = assumed_rate(protocol, its[0].levels, its[0].subject)
        cells.append(
            {
                "cell": key,
                "subject": its[0].subject,
                "levels": its[0].levels,
                "n": len(its),
                "assumed_rate": p,
                "half_width": wilson_half_width(p, len(its)),
            }
        )
    contrasts = []
    for c in protocol.analysis.contrasts:
        for s in protocol.subjects:

            def arm(level: str, c=c, s=s) -> tuple[int, float]:  # noqa: ANN001
                chosen = arm_items(items, c, s.id, level)
                rates = [assumed_rate(protocol, i.levels, i.subject) for i in chosen]
                return len(chosen), (sum(rates) / len(rates) if rates else DEFAULT_RATE)

            (nt, pt), (nc, pc) = arm(c.treatment), arm(c.control)
            contrasts.append(
                {
                    "name": c.name,
                    "subject": s.id,
                    "outcome": protocol.analysis.primary,
                    "n_treatment": nt,
                    "n_control": nc,
                    "assumed_treatment": pt,
                    "assumed_control": pc,
                    "half_width": newcombe_half_width(pt, nt, pc, nc) if nt and nc else None,
                }
            )
    return {
        "created": utc_stamp(),
        "assumed_rates": [a.model_dump() for a in protocol.analysis.assumed_rates],
        "cells": cells,
        "contrasts": contrasts,
        "cost": cost_forecast(protocol, items),
    }


def cost_forecast(protocol: Protocol, items: list[Item]) -> dict[str, Any]:
    """Tokens and dollars for the subject calls and the evaluators, online and via Batches."""
    lines = []
    tin = tout = 0
    online = batch = 0.0
    unknown: list[str] = []
    response_tokens = 0
    tools = len(json.dumps([t.model_dump() for t in protocol.tools])) if protocol.tools else 0
    for s in protocol.subjects:
        its = [i for i in items if i.subject == s.id]
        reply = s.params.max_tokens * EXPECTED_OUTPUT_SHARE
        calls = sum(1 + i.generated() for i in its)
        s_in = sum(_input_chars(i, tools, reply) for i in its) // CHARS_PER_TOKEN
        s_out = int(calls * reply)
        tin, tout, response_tokens = tin + s_in, tout + s_out, response_tokens + s_out
        if s.provider == "local":
            cost = _local_cost(s)
        elif known(s.model) and s.provider == "openai":  # no Message Batches for it
            usd = price_usd(s.model, s_in, s_out) or 0.0
            online, batch = online + usd, batch + usd
            cost = f"~${usd:.2f} online (OpenAI list price)"
        elif known(s.model):
            usd = price_usd(s.model, s_in, s_out) or 0.0
            online, batch = online + usd, batch + usd / 2
            cost = f"~${usd:.2f} online, ~${usd / 2:.2f} via the Batch API"
        else:
            unknown.append(s.model)
            cost = "cost unknown (model not in the price table)"
        lines.append(
            f"collect: {calls} calls to {s.model}, ~{s_in:,} input tokens, ~{s_out:,} output "
            f"(≤{calls * s.params.max_tokens:,}), {cost}"
        )
    j_fresh, j_cached, j_out = _judge_tokens(protocol, len(items), response_tokens)
    tin, tout = tin + j_fresh + j_cached, tout + j_out
    j = protocol.evaluation.judge
    if j.provider == "local":
        jcost = _local_cost(j)
    elif known(j.model):
        usd = price_usd(j.model, j_fresh, j_out, cache_read=j_cached) or 0.0
        online, batch = online + usd, batch + usd
        jcost = f"~${usd:.2f} (agents talk turn by turn: no batch discount)"
    else:
        unknown.append(j.model)
        jcost = "cost unknown (model not in the price table)"
    lines.append(
        f"evaluate: {protocol.evaluation.evaluators} evaluators on {j.model}, ~{j_fresh:,} fresh "
        f"+ ~{j_cached:,} cached input tokens, ~{j_out:,} output, {jcost}"
    )
    priced = not unknown and any(r.provider != "local" for r in [*protocol.subjects, j])
    return {
        "input_tokens": tin,
        "output_tokens": tout,
        "online_usd": online if priced else (0.0 if not unknown else None),
        "batch_usd": batch if priced else (0.0 if not unknown else None),
        "assumptions": (
            f"{CHARS_PER_TOKEN} characters per token; answers use {EXPECTED_OUTPUT_SHARE:.0%} of "
            f"max_tokens; {VERDICT_TOKENS} output tokens per verdict; the evaluators' "
            "conversation re-read from the prompt cache each turn"
        ),
        "lines": lines,
    }


def _local_cost(ref: ModelRef) -> str:
    """A local model's calls cost nothing per call, on the worker or on a server of one's own
    (vLLM, llama.cpp) at its base_url."""
    return "free (local worker)" if ref.base_url is None else f"free (local, {ref.base_url})"


def _input_chars(item: Item, tools: int, reply_tokens: float) -> int:
    """The characters an item's subject calls send: its system prompt and tools with each call,
    and for a conversation each call's turns so far, the subject's own earlier replies (at the
    expected length) included."""
    fixed = len(item.system) + tools
    if not item.turns:
        return fixed + len(item.user)
    total = so_far = 0
    for turn in item.turns:
        if turn.text is None:  # a generated turn: a call of its own, then its reply is sent on
            total += fixed + so_far
            so_far += int(reply_tokens * CHARS_PER_TOKEN)
        else:
            so_far += len(turn.text) + (len(json.dumps(turn.input)) if turn.input else 0)
    return total + fixed + so_far


def _judge_tokens(protocol: Protocol, n_items: int, response_tokens: int) -> tuple[int, int, int]:
    """(fresh input, cache-read input, output) tokens for the evaluator agents, roughly: each
    evaluator reads its share of responses once fresh, and re-reads its growing conversation
    (behind the cached protocol and tools) from the cache on every turn."""
    ev = protocol.evaluation
    per_item = response_tokens / max(n_items, 1) + 40  # the response plus its blinded framing
    prefix = (
        TOOL_PREFIX_TOKENS
        + len(ev.rubric) // CHARS_PER_TOKEN
        + sum(len(q.question) + len(q.explanation) for q in ev.comprehension) // CHARS_PER_TOKEN
    )
    judged = n_items * (1 + ev.overlap) + (ev.evaluators if ev.duplicates else 0)
    per_eval = judged / ev.evaluators
    chunks = max(1, math.ceil(per_eval / ev.chunk_size))
    grow = ev.chunk_size * (per_item + VERDICT_TOKENS)
    # turns: read_protocol, comprehension, then get_batch and submit_verdicts per chunk
    turns = 2 + 2 * chunks
    history = sum(min(t // 2, chunks) * grow for t in range(turns))
    fresh = int(ev.evaluators * (prefix + per_eval * per_item))
    cached = int(ev.evaluators * ((turns - 1) * prefix + history))
    out = int(judged * VERDICT_TOKENS + ev.evaluators * turns * 30)
    return fresh, cached, out


def design_text(f: dict[str, Any], primary: str) -> str:
    """The design checkpoint's forecast, in a few lines."""
    lines = list(f["cost"]["lines"])
    c = f["cost"]
    if c["online_usd"] is not None:
        lines.append(
            f"in all: ~{c['input_tokens']:,} tokens in, ~{c['output_tokens']:,} out; "
            f"~${c['online_usd']:.2f} online, ~${c['batch_usd']:.2f} with subjects via the "
            "Batch API"
        )
    widths = [x["half_width"] for x in f["cells"]]
    if widths:
        lines.append(
            f"precision: {primary} per cell ±{100 * min(widths):.0f} to ±{100 * max(widths):.0f} "
            f"points (95% Wilson, n={min(x['n'] for x in f['cells'])}"
            f"–{max(x['n'] for x in f['cells'])}, at the assumed rates)"
        )
    for x in f["contrasts"]:
        if x["half_width"] is not None:
            lines.append(
                f"precision: {x['name']} ({x['subject']}) ±{100 * x['half_width']:.0f} points "
                f"(assumed {100 * x['assumed_treatment']:.0f}% vs {100 * x['assumed_control']:.0f}%"
                f", n={x['n_treatment']}+{x['n_control']})"
            )
    return "\n".join(lines)


def forecast(protocol: Protocol, records: Records, checkpoint: str) -> str:
    if checkpoint == "design":
        return design_text(design_forecast(protocol, records.items()), protocol.analysis.primary)
    if checkpoint == "evaluate":
        q = protocol.analysis.qualitative
        if q is not None:
            return (
                f"analyze: statistics and plots locally, then one analyst call to "
                f"{(q.model or protocol.evaluation.judge).model} on {q.sample_per_cell} "
                "responses per cell; report."
            )
        return "analyze and report run locally: no API calls."
    return "Nothing further: approving closes the run."
