"""SUMMARY.md as the records show it: stage progress, decisions, open flags, key numbers, next step.

Everything here is derived from records.sqlite and LOG.md, never from process memory, so a new
process shows the same state as the one that was killed.
"""

from __future__ import annotations

from memory import DecisionEntry, Flag, StageProgress, Summary, write_summary
from orchestrator.analysis import AnalysisResult, headline, load_agreement, load_analysis
from orchestrator.analysis.decision_text import headline as decision_headline
from orchestrator.pending import pending_text
from orchestrator.records import AmendmentStatus, StageStatus
from orchestrator.rundir import RunDir
from orchestrator.state import STAGES
from orchestrator.usage import possibly_paid_text, usage_totals


def key_numbers(run: RunDir) -> dict[str, str]:
    numbers: dict[str, str] = {}
    u = usage_totals(run)
    numbers["API calls (incl. failed attempts)"] = f"{u['calls']:.0f}"
    numbers["tokens in / out"] = f"{u['input_tokens']:.0f} / {u['output_tokens']:.0f}"
    unpriced = f" (+{u['unpriced']:.0f} unpriced calls)" if u["unpriced"] else ""
    numbers["cost"] = f"${u['cost_usd']:.4f}{unpriced}"
    if (possibly := possibly_paid_text(run.records.possibly_paid())) is not None:
        numbers["not recorded"] = possibly
    numbers.update(_amendment_numbers(run))
    agreement = load_agreement(run.path("artifacts", "agreement.json"))
    if agreement is not None:
        primary = run.loaded.protocol.analysis.primary
        numbers[f"agreement on {primary}"] = headline(agreement, primary)
    analysis = run.path("artifacts", "analysis.json")
    if analysis.exists():
        result = load_analysis(analysis)
        numbers.update(decision_numbers(result))
        numbers.update(_rate_numbers(result))
    return numbers


def decision_numbers(analysis: AnalysisResult) -> dict[str, str]:
    """Each hypothesis' decision, keyed `hypothesis <id>` (the final checkpoint shows them)."""
    if analysis.decisions is None:
        return {}
    return {f"hypothesis {h.id}": decision_headline(h) for h in analysis.decisions.hypotheses}


def _amendment_numbers(run: RunDir) -> dict[str, str]:
    numbers: dict[str, str] = {}
    m = run.manifest
    amendments = run.records.amendments()
    if m.preregistered_sha256:
        approved = sum(1 for a in amendments if a.status == AmendmentStatus.APPROVED)
        state = f", amended {approved}× (now {m.protocol_sha256[:12]})" if approved else ""
        numbers["pre-registered protocol"] = (
            f"sha256 {m.preregistered_sha256[:12]}{state or ', unamended'}"
        )
    for a in amendments:
        if a.status == AmendmentStatus.PENDING:
            numbers[f"amendment {a.n}"] = f"pending, proposed by {a.by}: {a.note}"
    return numbers


def _rate_numbers(analysis: AnalysisResult) -> dict[str, str]:
    """The primary outcome's rate per cell."""
    numbers: dict[str, str] = {}
    primary = analysis.primary
    for cell in analysis.cells:
        o = cell.outcomes[primary]
        rate = "n/a" if o.rate is None else f"{o.rate:.2f} [{o.lo:.2f}, {o.hi:.2f}]"
        numbers[f"{primary} · {cell.cell}"] = f"{rate} (n={o.n}, unscored={o.unscored})"
    return numbers


def next_step(run: RunDir, waiting_at: str | None) -> str:
    status = run.manifest.status
    pending = [a for a in run.records.amendments() if a.status == AmendmentStatus.PENDING]
    if pending:
        return (
            f"Amendment {pending[0].n} to the analysis is pending: `research approve {run.id} "
            f"[--reject] [--note TEXT]` decides it."
        )
    if waiting_at == "evaluate" and (waiting := pending_text(run.records)) is not None:
        return (
            f"{waiting}: `research resume {run.id} --yes` judges them when the API answers "
            f"again (`research approve {run.id} --leave-pending` goes on without them)."
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
    if run.manifest.reason:
        return f"Stopped: {run.manifest.reason}. Continue with `research resume {run.id}`."
    return f"Continue with `research resume {run.id}`."


def stage_progress(run: RunDir) -> list[StageProgress]:
    stages = run.records.stages()
    progress = []
    for s in STAGES:
        row = stages.get(s)
        if row is None:
            progress.append(StageProgress(s, StageStatus.PENDING, ""))
        else:
            counts = ", ".join(f"{k}={v}" for k, v in row.counts.items())
            progress.append(StageProgress(s, row.status, counts))
    return progress


def build_summary(run: RunDir, waiting_at: str | None = None) -> Summary:
    rec = run.records
    decisions = [
        DecisionEntry(d.checkpoint, d.decision, d.by, d.at, d.note) for d in rec.decisions()
    ]
    flags = [
        Flag(f.stage, f.kind, f"{f.text} (raised by {f.raised_by})", len(f.items))
        for f in rec.flags()
        if not f.resolution
    ]
    m = run.manifest
    offline = f" (offline: {m.local_model})" if m.offline else ""
    return Summary(
        run_id=run.id,
        protocol_id=m.protocol_id,
        protocol_title=run.loaded.protocol.title,
        protocol_sha256=m.protocol_sha256,
        status=m.status if not waiting_at else f"awaiting approval at {waiting_at}",
        size=f"{m.size}{offline}",
        stages=stage_progress(run),
        decisions=decisions,
        flags=flags,
        numbers=key_numbers(run),
        next_step=next_step(run, waiting_at),
        last_log_entry=run.log.last_number,
        models=m.models,
    )


def refresh_summary(run: RunDir, waiting_at: str | None = None) -> None:
    write_summary(run.path("SUMMARY.md"), build_summary(run, waiting_at))
