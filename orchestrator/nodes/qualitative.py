"""The qualitative section, written by the analyst agent during analyze → qualitative.json.

`write_qualitative(ctx, analysis)` samples `sample_per_cell` responses per cell (seeded; scored,
non-empty responses first, stratified by the primary outcome), briefs the analyst
(agents/analyst.py) with SUMMARY.md, the statistics and the samples, and keeps only the quotes
found verbatim in the cited item's response: each removed quote is listed once and logged to
LOG.md, and the analyst's prose that repeats one (whole or cut off) is withheld. An analyst
that fails (an invalid draft, a request the API refused, refused credentials) leaves the error in
the file and the run goes on; an API that keeps failing (overload, server errors, lost
connections) stops the run instead (`Unavailable`), to be resumed: an outage is not an analysis.
The call is in the ledger, so running the stage again costs nothing and logs nothing new.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from agents.analyst import (
    COMPACT,
    ONLINE,
    AnalystBrief,
    AnalystResult,
    Sample,
    check_quotes,
    withhold_fragments,
    write_draft,
)
from agents.client import AuthenticationFailed
from agents.loop import retry_note
from memory import write_atomic
from orchestrator.analysis import AnalysisResult, primary_verdicts
from orchestrator.context import RunContext
from orchestrator.protocol.schema import ModelRef, Qualitative
from orchestrator.records import Item, Response, Verdict, VerdictStatus

_inputs = ImmutableSandboxedEnvironment(
    loader=FileSystemLoader(Path(__file__).parent.parent / "templates"),
    undefined=StrictUndefined,
    autoescape=False,
).get_template("analyst_inputs.j2")
"""What the analyst reads of the numbers, as macros (`statistics`, `sampling`)."""


def write_qualitative(ctx: RunContext, analysis: AnalysisResult) -> dict[str, Any]:
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
    seed = ctx.protocol.design.seed
    sampled = sample(list(items.values()), responses, verdicts, spec.sample_per_cell, seed, primary)
    ref = _model(ctx)
    out = {
        "model": ref.model,
        "focus": spec.focus,
        "overview": "",
        "sections": [],
        "limitations": "",
        "removed": [],
        "withheld": [],
        "sampled": sampled,
        "error": None,
    }
    shown = {i: responses[i].text for ids in sampled.values() for i in ids}
    if not shown:
        result = AnalystResult(None, "no responses to sample")
    else:
        brief = _brief(ctx, spec, analysis, sampled, items, responses, verdicts)
        result = _call(ctx, ref, brief)
    if result.draft is not None:
        kept, removed = check_quotes(result.draft, shown)
        kept, withheld = withhold_fragments(kept, removed)
        sections = []
        for t in kept.themes:
            quotes = [
                {"item_id": q.item_id, "quote": q.quote, "cell": items[q.item_id].cell}
                for q in t.quotes
            ]
            sections.append({"title": t.title, "text": t.text, "quotes": quotes})
        out.update(
            overview=kept.overview,
            limitations=kept.limitations,
            sections=sections,
            removed=list(removed),
            withheld=withheld,
        )
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
            if v is not None and v.status == VerdictStatus.SCORED and v.fields is not None:
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


def render_statistics(analysis: AnalysisResult) -> str:
    """analysis.json as compact text for the analyst: per-cell rates with intervals, the
    contrasts, and each model's interaction (its coefficient, or the joint test of several)."""
    return _inputs.module.statistics(analysis).rstrip("\n")


def _model(ctx: RunContext) -> ModelRef:
    spec = ctx.protocol.analysis.qualitative
    if spec is None or spec.model is None or ctx.run.manifest.offline:
        return ctx.protocol.evaluation.judge  # offline, as_run made the judge the local model
    return spec.model


def _brief(
    ctx: RunContext,
    spec: Qualitative,
    analysis: AnalysisResult,
    sampled: dict[str, list[str]],
    items: dict[str, Item],
    responses: dict[str, Response],
    verdicts: dict[str, Verdict],
) -> AnalystBrief:
    verdict_spec = ctx.protocol.evaluation.verdict
    shown_fields = {
        n for n, f in verdict_spec.items() if f.type in ("bool", "enum", "ordinal", "int")
    }
    samples = []
    for ids in sampled.values():
        for i in ids:
            v = verdicts.get(i)
            fields = (
                v.fields if v is not None and v.status == VerdictStatus.SCORED and v.fields else {}
            )
            shown = {k: x for k, x in fields.items() if k in shown_fields}
            item = items[i]
            where = {"subject": item.subject, **item.levels}
            samples.append(Sample(i, item.cell, where, responses[i].text, shown))
    summary = ctx.run.path("SUMMARY.md")
    return AnalystBrief(
        title=ctx.protocol.title,
        question=ctx.protocol.question.strip(),
        focus=spec.focus.strip(),
        summary=summary.read_text().strip() if summary.exists() else "(none yet)",
        statistics=render_statistics(analysis),
        samples=samples,
        sampling=_inputs.module.sampling(spec.sample_per_cell, ctx.protocol.analysis.primary),
    )


def _call(ctx: RunContext, ref: ModelRef, brief: AnalystBrief) -> AnalystResult:
    limits = COMPACT if ref.provider == "local" else ONLINE

    async def run() -> AnalystResult:
        async with ctx.client(ref) as client:
            return await write_draft(
                client,
                brief,
                model=ref.model,
                params=ref.params.model_dump(),
                limits=limits,
                max_attempts=ctx.protocol.evaluation.max_attempts,
                retry=ctx.retry,
                on_retry=lambda result, n, wait: ctx.log(
                    "analyze",
                    "retry",
                    retry_note("analyst", result, n, ctx.retry, wait),
                    actor="analyst",
                ),
            )

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
    if out["withheld"]:
        text = (
            f"Withheld the analyst's {', '.join(out['withheld'])}: it repeats a removed quote, "
            "whole or cut off."
        )
        ctx.log("analyze", "quote_removed", text)
    n = sum(len(ids) for ids in out["sampled"].values())
    paid = [c for c in result.calls if not c.cached]
    tokens = sum(c.input_tokens + c.output_tokens for c in paid)
    cost = sum(c.cost_usd or 0.0 for c in paid)
    usage = f" {len(paid)} call(s), {tokens} tokens, ${cost:.4f}." if paid else ""
    if out["error"]:
        text = (
            f"Qualitative section not written ({out['model']}, {n} sampled responses): "
            f"{out['error']}.{usage}"
        )
        ctx.log("analyze", "error", text, actor="analyst")
        return
    quotes = sum(len(s["quotes"]) for s in out["sections"])
    text = (
        f"Analyst ({out['model']}) read {n} responses from {len(out['sampled'])} cells: "
        f"{len(out['sections'])} themes, {quotes} quotes verified, "
        f"{len(out['removed'])} removed (see quote_removed).{usage}"
    )
    ctx.log("analyze", "qualitative", text, actor="analyst")
