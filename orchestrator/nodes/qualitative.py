"""The qualitative section, written by the analyst agent during analyze → qualitative.json.

`write_qualitative(ctx, analysis)` samples `sample_per_cell` responses per cell (seeded; scored,
non-empty responses first, stratified by the primary outcome), briefs the analyst
(agents/analyst.py) with SUMMARY.md, the statistics and the samples, and keeps only the quotes
found verbatim in the cited item's response: each removed quote is logged to LOG.md. A failed
analyst (API error, invalid draft) leaves the error in the file and the run goes on. The call is
in the ledger, so running the stage again costs nothing and logs nothing new.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from agents.analyst import (
    COMPACT,
    ONLINE,
    AnalystBrief,
    AnalystResult,
    Sample,
    check_quotes,
    write_draft,
)
from agents.client import AuthenticationFailed
from memory import write_atomic
from orchestrator.analysis import primary_verdicts
from orchestrator.context import RunContext
from orchestrator.protocol.schema import ModelRef, Qualitative
from orchestrator.records import Item, Response, Verdict


def write_qualitative(ctx: RunContext, analysis: dict[str, Any]) -> dict[str, Any]:
    """Write artifacts/qualitative.json (see the module docstring) and return what it holds.
    `analysis` is analyze_records' result for this run."""
    path = ctx.run.path("artifacts", "qualitative.json")
    spec = ctx.protocol.analysis.qualitative
    if spec is None:
        out: dict[str, Any] = {"skipped": "no analysis.qualitative in the protocol"}
        write_atomic(path, json.dumps(out, indent=2) + "\n")
        return out
    rec = ctx.run.records
    items = {i.id: i for i in rec.items()}
    responses = rec.responses()
    verdicts = primary_verdicts(rec.verdicts())
    primary = ctx.protocol.analysis.primary
    sampled = sample(list(items.values()), responses, verdicts, spec.sample_per_cell,
                     ctx.protocol.design.seed, primary)  # fmt: skip
    ref = _model(ctx)
    out = {"model": ref.model, "focus": spec.focus, "overview": "", "sections": [],
           "limitations": "", "removed": [], "sampled": sampled, "error": None}  # fmt: skip
    shown = {i: responses[i].text for ids in sampled.values() for i in ids}
    if not shown:
        result = AnalystResult(None, "no responses to sample")
    else:
        brief = _brief(ctx, spec, analysis, sampled, items, responses, verdicts)
        result = _call(ctx, ref, brief)
    if result.draft is not None:
        kept, removed = check_quotes(result.draft, shown)
        out.update(
            overview=kept.overview,
            limitations=kept.limitations,
            sections=[
                {"title": t.title, "text": t.text, "quotes": [
                    {"item_id": q.item_id, "quote": q.quote, "cell": items[q.item_id].cell}
                    for q in t.quotes
                ]}
                for t in kept.themes
            ],
            removed=list(removed),
        )  # fmt: skip
    else:
        out["error"] = result.error
    if not _already_written(path, out):  # a re-run answered from the ledger logs nothing new
        _log(ctx, out, result)
        write_atomic(path, json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    return out


def sample(
    items: list[Item],
    responses: dict[str, Response],
    verdicts: dict[str, Verdict],
    n: int,
    seed: int,
    primary: str,
) -> dict[str, list[str]]:
    """Up to `n` item ids per cell: scored responses first, taken in turn from each value of
    the primary outcome (so a cell shows both kinds where it has them), then unscored ones; only
    non-empty responses. Seeded per cell, so a re-run samples the same items."""
    by_cell: dict[str, list[Item]] = defaultdict(list)
    for item in sorted(items, key=lambda i: i.id):
        r = responses.get(item.id)
        if r is not None and r.error is None and r.text.strip():
            by_cell[item.cell].append(item)
    out = {}
    for cell, cell_items in sorted(by_cell.items()):
        rng = random.Random(f"{seed}/qualitative/{cell}")
        strata: dict[str, list[str]] = defaultdict(list)
        unscored = []
        for item in cell_items:
            v = verdicts.get(item.id)
            if v is not None and v.status == "scored" and v.fields is not None:
                strata[str(v.fields.get(primary))].append(item.id)
            else:
                unscored.append(item.id)
        for ids in [*strata.values(), unscored]:
            rng.shuffle(ids)
        chosen: list[str] = []
        queues = [strata[k] for k in sorted(strata)]
        while len(chosen) < n and any(queues):
            for q in queues:
                if q and len(chosen) < n:
                    chosen.append(q.pop())
        chosen += unscored[: n - len(chosen)]
        out[cell] = sorted(chosen)
    return out


def render_statistics(analysis: dict[str, Any]) -> str:
    """analysis.json as compact text: per-cell rates with intervals, then the contrasts."""

    def rate(o: dict[str, Any]) -> str:
        if o.get("rate") is None:
            return "n/a (no scored items)"
        return f"{o['k']}/{o['n']} = {o['rate']:.2f} [{o['lo']:.2f}, {o['hi']:.2f}]"

    lines = [
        f"Primary outcome: {analysis.get('primary')}. Rates are k/n of scored items with 95% "
        "Wilson intervals; unscored items are left out of n.",
        "",
        "Cells:",
    ]
    for c in analysis.get("cells", []):
        outcomes = "; ".join(f"{name} {rate(o)}" for name, o in c.get("outcomes", {}).items())
        unscored = max((o.get("unscored", 0) for o in c.get("outcomes", {}).values()), default=0)
        enums = "; ".join(
            f"{e}: " + ", ".join(f"{v} {k}" for v, k in sorted(counts.items()))
            for e, counts in c.get("enums", {}).items()
            if counts
        )
        lines.append(f"- {c['cell']}: {outcomes}" + (f"; {enums}" if enums else "")
                     + f" (unscored {unscored})")  # fmt: skip
    if analysis.get("contrasts"):
        lines += ["", "Contrasts (treatment minus control):"]
    for c in analysis.get("contrasts", []):
        t, k = c["treatment"], c["control"]
        line = (f"- {c['name']}, {c['subject']}, {c['outcome']}: {t['level']} {rate(t)} vs "
                f"{k['level']} {rate(k)}")  # fmt: skip
        if c.get("diff") is not None:
            line += f"; diff {c['diff']:+.2f} [{c['lo']:+.2f}, {c['hi']:+.2f}]"
            line += f", Fisher p = {c['fisher_p']:.3g}"
        if c.get("p_adjusted") is not None:
            method = (analysis.get("correction") or {}).get("method", "adjusted")
            line += f" ({method}-adjusted p = {c['p_adjusted']:.3g})"
        lines.append(line)
    for m in analysis.get("models", []):
        if m.get("error"):
            lines.append(f"- model {m['name']}: not estimable ({m['error']})")
            continue
        for t in m.get("coefficients", []):
            if t.get("term") == m.get("interaction"):
                ci = f"[{t['lo']:+.2f}, {t['hi']:+.2f}]"
                lines.append(f"- model {m['name']} (logistic): {t['term']} {t['coef']:+.2f} "
                             f"log-odds {ci}, p = {t['p']:.3g}")  # fmt: skip
    return "\n".join(lines)


def _model(ctx: RunContext) -> ModelRef:
    spec = ctx.protocol.analysis.qualitative
    if spec is None or spec.model is None or ctx.run.manifest.offline:
        return ctx.protocol.evaluation.judge  # offline, as_run made the judge the local model
    return spec.model


def _brief(
    ctx: RunContext,
    spec: Qualitative,
    analysis: dict[str, Any],
    sampled: dict[str, list[str]],
    items: dict[str, Item],
    responses: dict[str, Response],
    verdicts: dict[str, Verdict],
) -> AnalystBrief:
    shown_fields = {n for n, f in ctx.protocol.evaluation.verdict.items()
                    if f.type in ("bool", "enum")}  # fmt: skip
    samples = []
    for ids in sampled.values():
        for i in ids:
            v = verdicts.get(i)
            fields = v.fields if v is not None and v.status == "scored" and v.fields else {}
            samples.append(Sample(
                i, items[i].cell, {"subject": items[i].subject, **items[i].levels},
                responses[i].text, {k: x for k, x in fields.items() if k in shown_fields},
            ))  # fmt: skip
    summary = ctx.run.path("SUMMARY.md")
    return AnalystBrief(
        title=ctx.protocol.title,
        question=ctx.protocol.question.strip(),
        focus=spec.focus.strip(),
        summary=summary.read_text().strip() if summary.exists() else "(none yet)",
        statistics=render_statistics(analysis),
        samples=samples,
        sampling=f"Up to {spec.sample_per_cell} per cell, drawn in turn from each value of "
        f"`{ctx.protocol.analysis.primary}` where a cell has both: do not read rates from the "
        "samples; the rates are in the statistics.",
    )


def _call(ctx: RunContext, ref: ModelRef, brief: AnalystBrief) -> AnalystResult:
    limits = COMPACT if ref.provider == "local" else ONLINE

    async def run() -> AnalystResult:
        async with ctx.client(ref) as client:
            return await write_draft(
                client, brief, model=ref.model, params=ref.params.model_dump(), limits=limits,
                max_attempts=ctx.protocol.evaluation.max_attempts,
            )  # fmt: skip

    try:
        return ctx.run_async(run())
    except AuthenticationFailed as e:  # the section is optional: the run goes on without it
        return AnalystResult(None, f"analyst call failed: {e}")


def _already_written(path: Path, out: dict[str, Any]) -> bool:
    try:
        return json.loads(path.read_text()) == out
    except (OSError, ValueError):
        return False


def _log(ctx: RunContext, out: dict[str, Any], result: AnalystResult) -> None:
    for r in out["removed"]:
        text = f"Removed a quote attributed to {r['item_id']} ({r['reason']}): {r['quote']!r}"
        ctx.log("analyze", "quote_removed", text)
    n = sum(len(ids) for ids in out["sampled"].values())
    paid = [c for c in result.calls if not c.cached]
    tokens = sum(c.input_tokens + c.output_tokens for c in paid)
    cost = sum(c.cost_usd or 0.0 for c in paid)
    usage = f" {len(paid)} call(s), {tokens} tokens, ${cost:.4f}." if paid else ""
    if out["error"]:
        ctx.log("analyze", "error", f"Qualitative section not written ({out['model']}, "
                f"{n} sampled responses): {out['error']}.{usage}", actor="analyst")  # fmt: skip
        return
    quotes = sum(len(s["quotes"]) for s in out["sections"])
    ctx.log("analyze", "qualitative",
            f"Analyst ({out['model']}) read {n} responses from {len(out['sampled'])} cells: "
            f"{len(out['sections'])} themes, {quotes} quotes verified, "
            f"{len(out['removed'])} removed (see quote_removed).{usage}",
            actor="analyst")  # fmt: skip
