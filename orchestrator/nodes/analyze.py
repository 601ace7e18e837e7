"""analyze: per-cell rates with Wilson intervals and the protocol's contrasts → analysis.json."""

from __future__ import annotations

import json

from langgraph.runtime import Runtime

from memory import write_atomic
from orchestrator.analysis import analyze_records
from orchestrator.context import RunContext
from orchestrator.progress import finish_stage
from orchestrator.state import RunState


def analyze(state: RunState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    result = analyze_records(ctx.protocol, ctx.run.records)
    write_atomic(ctx.run.path("artifacts", "analysis.json"), json.dumps(result, indent=2) + "\n")
    primary = result["primary"]
    lines = []
    for c in result["cells"]:
        o = c["outcomes"][primary]
        rate = "n/a" if o["rate"] is None else f"{o['rate']:.2f} [{o['lo']:.2f}, {o['hi']:.2f}]"
        lines.append(f"- {c['cell']}: {primary} {rate} (n={o['n']}, unscored {o['unscored']})")
    t = result["totals"]
    finish_stage(
        ctx.run,
        "analyze",
        {"cells": len(result["cells"]), "contrasts": len(result["contrasts"])},
        f"{t['scored']} scored and {t['unscored']} unscored items.\n" + "\n".join(lines),
    )
    return {"stage": "analyze"}
