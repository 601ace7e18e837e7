"""Run progress as the records show it: SUMMARY.md, stage commits and the checkpoint panel.

Everything here is derived from records.sqlite and LOG.md, never from process memory, so a new
process shows the same state as the one that was killed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from memory import Decision, Flag, StageProgress, Summary, write_summary
from orchestrator.records import AmendmentRow
from orchestrator.rundir import RunDir

STAGES = ["design", "collect", "screen", "probe", "evaluate", "analyze", "report"]


def usage_totals(run: RunDir) -> dict[str, float]:
    usage = run.records.usage()
    return {
        "calls": sum(u["calls"] for u in usage.values()),
        "input_tokens": sum(u["input_tokens"] or 0 for u in usage.values()),
        "output_tokens": sum(u["output_tokens"] or 0 for u in usage.values()),
        "cost_usd": sum(u["cost_usd"] or 0.0 for u in usage.values()),
        "unpriced": sum(u["unpriced"] or 0 for u in usage.values()),
    }


@dataclass(frozen=True)
class FlagGroup:
    """Open flags of one kind, as the human sees them at a checkpoint."""

    stage: str
    kind: str
    raised_by: list[str]
    texts: list[str]
    examples: list[tuple[str, str]]
    """(item id, the start of its response)."""
    blocking: bool


def flag_groups(run: RunDir) -> list[FlagGroup]:
    """Open flags grouped by kind: who raised them, what they said, example items."""
    from orchestrator.runner import is_blocking

    responses = run.records.responses()
    groups: dict[tuple[str, str], list] = {}
    for f in run.records.flags():
        if f.resolution is None:
            groups.setdefault((f.stage, f.kind), []).append(f)
    out = []
    order = sorted(groups.items(), key=lambda kv: (not any(is_blocking(f) for f in kv[1]), kv[0]))
    for (stage, kind), flags in order:
        items = list(dict.fromkeys(i for f in flags for i in f.items))[:3]
        examples = [
            (i, " ".join(responses[i].text.split())[:100] if i in responses else "") for i in items
        ]
        out.append(
            FlagGroup(
                stage=stage,
                kind=kind,
                raised_by=sorted({f.raised_by for f in flags}),
                texts=list(dict.fromkeys(f.text for f in flags)),
                examples=examples,
                blocking=any(is_blocking(f) for f in flags),
            )
        )
    return out


def key_numbers(run: RunDir) -> dict[str, str]:
    numbers: dict[str, str] = {}
    u = usage_totals(run)
    numbers["API calls (incl. failed attempts)"] = f"{u['calls']:.0f}"
    numbers["tokens in / out"] = f"{u['input_tokens']:.0f} / {u['output_tokens']:.0f}"
    cost = f"${u['cost_usd']:.4f}"
    numbers["cost"] = cost + (f" (+{u['unpriced']:.0f} unpriced calls)" if u["unpriced"] else "")
    m = run.manifest
    amendments = run.records.amendments()
    if m.preregistered_sha256:
        approved = sum(1 for a in amendments if a.status == "approved")
        numbers["pre-registered protocol"] = f"sha256 {m.preregistered_sha256[:12]}" + (
            f", amended {approved}× (now {m.protocol_sha256[:12]})" if approved else ", unamended"
        )
    for a in amendments:
        if a.status == "pending":
            numbers[f"amendment {a.n}"] = f"pending, proposed by {a.by}: {a.note}"
    agreement = run.path("artifacts", "agreement.json")
    if agreement.exists():
        from orchestrator.agreement import headline

        primary = run.loaded.protocol.analysis.primary
        numbers[f"agreement on {primary}"] = headline(json.loads(agreement.read_text()), primary)
    analysis = run.path("artifacts", "analysis.json")
    if analysis.exists():
        data = json.loads(analysis.read_text())
        primary = data["primary"]
        for cell in data["cells"]:
            o = cell["outcomes"][primary]
            rate = "n/a" if o["rate"] is None else f"{o['rate']:.2f} [{o['lo']:.2f}, {o['hi']:.2f}]"
            numbers[f"{primary} · {cell['cell']}"] = (
                f"{rate} (n={o['n']}, unscored={o['unscored']})"
            )
    return numbers


def next_step(run: RunDir, waiting_at: str | None) -> str:
    status = run.manifest.status
    pending = [a for a in run.records.amendments() if a.status == "pending"]
    if pending:
        return (
            f"Amendment {pending[0].n} to the analysis is pending: `research approve {run.id} "
            f"[--reject] [--note TEXT]` decides it."
        )
    if waiting_at:
        return (
            f"Waiting for approval at the `{waiting_at}` checkpoint: `research approve "
            f"{run.id} [--reject] [--note TEXT]`, then `research resume {run.id}`."
        )
    if status == "complete":
        return f"Done. Read report.md (`research report {run.id}` rebuilds it from records)."
    if status == "rejected":
        return "Stopped: a checkpoint was rejected (see Decisions). Start a new run to go on."
    return f"Continue with `research resume {run.id}`."


def summary(run: RunDir, waiting_at: str | None = None) -> Summary:
    rec = run.records
    stages = rec.stages()
    progress = [
        StageProgress(
            s,
            stages[s][0] if s in stages else "pending",
            ", ".join(f"{k}={v}" for k, v in stages[s][1].items()) if s in stages else "",
        )
        for s in STAGES
    ]
    decisions = [Decision(d.checkpoint, d.decision, d.by, d.at, d.note) for d in rec.decisions()]
    flags = [
        Flag(f.stage, f.kind, f"{f.text} (raised by {f.raised_by})", len(f.items))
        for f in rec.flags()
        if not f.resolution
    ]
    m = run.manifest
    return Summary(
        run_id=run.id,
        protocol_id=m.protocol_id,
        protocol_title=run.loaded.protocol.title,
        protocol_sha256=m.protocol_sha256,
        status=m.status if not waiting_at else f"awaiting approval at {waiting_at}",
        size=f"{m.size}{' (offline: ' + str(m.local_model) + ')' if m.offline else ''}",
        stages=progress,
        decisions=decisions,
        flags=flags,
        numbers=key_numbers(run),
        next_step=next_step(run, waiting_at),
        last_log_entry=run.log.last_number,
        models=m.models,
    )


def refresh_summary(run: RunDir, waiting_at: str | None = None) -> None:
    write_summary(run.path("SUMMARY.md"), summary(run, waiting_at))


@dataclass(frozen=True)
class Panel:
    """What the human sees at a checkpoint."""

    run_id: str
    checkpoint: str
    done: list[tuple[str, str, str]]
    flags: list[FlagGroup]
    usage: dict[str, float]
    forecast: str
    numbers: dict[str, str]
    detail: str = ""
    """Shown verbatim above the question, e.g. an amendment's diff."""


def amendment_panel(run: RunDir, row: AmendmentRow) -> Panel:
    """What the human sees before deciding an amendment to the pre-registered analysis."""
    base = panel(run, f"amendment-{row.n}", "")
    redo = (
        "analyze and report are rebuilt from records"
        if "analyze" in run.records.stages()
        else ("the analyze stage will use the amended analysis")
    )
    return Panel(
        run_id=base.run_id,
        checkpoint=f"amendment {row.n} to the pre-registered analysis",
        done=base.done,
        flags=[],
        usage=base.usage,
        forecast=f"if approved, {redo}; no API calls. Proposed by {row.by}: {row.note}",
        numbers=base.numbers,
        detail=row.diff,
    )


def panel(run: RunDir, checkpoint: str, forecast: str) -> Panel:
    s = summary(run, checkpoint)
    return Panel(
        run_id=run.id,
        checkpoint=checkpoint,
        done=[(p.stage, p.status, p.counts) for p in s.stages if p.status != "pending"],
        flags=flag_groups(run),
        usage=usage_totals(run),
        forecast=forecast,
        numbers={k: v for k, v in s.numbers.items() if k.startswith("agreement")},
    )


def finish_stage(run: RunDir, stage: str, counts: dict[str, int | float], text: str) -> None:
    """Record a finished stage: records, LOG.md, SUMMARY.md, then one git commit."""
    run.records.set_stage(stage, "done", counts)
    run.log.append(stage, "orchestrator", "stage_done", text)
    refresh_summary(run)
    counts_text = ", ".join(f"{k}={v}" for k, v in counts.items())
    run.history.commit(f"{stage}: done ({counts_text})")
