"""analyze: the pre-registered statistics → analysis.json, then the analyst's qualitative
section → qualitative.json (one ledgered call, so re-running the node pays nothing)."""

from __future__ import annotations

import json

from langgraph.runtime import Runtime

from memory import write_atomic
from orchestrator.analysis import analyze_records
from orchestrator.context import RunContext
from orchestrator.nodes.qualitative import write_qualitative
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
    for c in result["contrasts"]:
        if c["diff"] is not None and c["outcome"] == primary:
            lines.append(
                f"- {c['name']} ({c['subject']}): {100 * c['diff']:+.1f} points "
                f"[{100 * c['lo']:+.1f}, {100 * c['hi']:+.1f}], p={c['fisher_p']:.3g}"
                + (f" ({result['correction']['method']}: {c['p_adjusted']:.3g})"
                   if c.get("p_adjusted") is not None else "")
            )  # fmt: skip
    for m in result.get("models", []):
        term = next((t for t in m["coefficients"] if t["term"] == m["interaction"]), None)
        if m["error"]:
            lines.append(f"- model {m['name']}: not estimable ({m['error']})")
        elif term is not None:
            lines.append(
                f"- model {m['name']}: {term['term']} {term['coef']:+.2f} log-odds "
                f"[{term['lo']:+.2f}, {term['hi']:+.2f}], p={term['p']:.3g} "
                f"(SE clustered by {m['cluster']}, {m['clusters'] or 'no'} clusters)"
            )
    t = result["totals"]
    qualitative = write_qualitative(ctx, result)
    if qualitative.get("error"):
        lines.append(f"Qualitative section failed: {qualitative['error']}")
    elif "sections" in qualitative:
        kept = sum(len(s["quotes"]) for s in qualitative["sections"])
        lines.append(
            f"Qualitative section: {len(qualitative['sections'])} themes, {kept} quotes checked "
            f"verbatim, {len(qualitative['removed'])} removed."
        )
    finish_stage(
        ctx.run,
        "analyze",
        {"cells": len(result["cells"]), "contrasts": len(result["contrasts"])},
        f"{t['scored']} scored and {t['unscored']} unscored items.\n" + "\n".join(lines),
    )
    return {"stage": "analyze"}
