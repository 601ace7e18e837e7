"""SUMMARY.md as the records show it: stage progress, decisions, open flags, key numbers, next step.

Everything here is derived from records.sqlite and LOG.md, never from process memory, so a new
process shows the same state as the one that was killed.
"""

from __future__ import annotations

import os
from pathlib import Path

from memory import DecisionEntry, Flag, StageProgress, Summary, write_summary
from orchestrator.analysis import AnalysisResult, headline, load_agreement, load_analysis
from orchestrator.analysis.decision_text import headline as decision_headline
from orchestrator.analysis.result import Calibration, Estimate
from orchestrator.manifest import Manifest, program_line
from orchestrator.pending import pending_text
from orchestrator.records import AmendmentStatus, StageStatus
from orchestrator.rundir import RunDir
from orchestrator.state import STAGES
from orchestrator.usage import possibly_paid_text, usage_totals


def load_result(run: RunDir) -> AnalysisResult | None:
    """analysis.json, once the analyze stage has written it."""
    path = run.path("artifacts", "analysis.json")
    return load_analysis(path) if path.exists() else None


def key_numbers(run: RunDir, result: AnalysisResult | None) -> dict[str, str]:
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
    if (labels := human_labels(run, result)) is not None:
        numbers["human labels"] = labels
    if result is not None:
        numbers.update(decision_numbers(result))
        numbers.update(_rate_numbers(result))
    return numbers


def _labelled(run: RunDir) -> tuple[int, int, list[str]]:
    """(items, field values, who) of the run's human labels, skips aside."""
    given = [x for x in run.records.labels() if not x.skipped]
    return len({x.item_id for x in given}), len(given), sorted({x.by for x in given})


def labels_folded_in(run: RunDir, analysis: AnalysisResult | None) -> bool:
    """Whether analysis.json reflects every human label in records (none counts as folded in),
    told by counting items and values: a label whose value changed in place goes unnoticed."""
    items, values, _ = _labelled(run)
    cal = analysis.calibration if analysis is not None else None
    if cal is None:
        return items == 0
    return (cal.items, cal.labels) == (items, values)


def human_labels(run: RunDir, analysis: AnalysisResult | None) -> str | None:
    """Who labelled how many items (`research label`) and, once the analysis has them, the
    judges against them on the primary outcome; None without labels."""
    items, _, by = _labelled(run)
    if not items:
        return None
    who = f"{items} item(s) labelled by {', '.join(by)}"
    if analysis is None:
        return f"{who} (the analyze stage sets the judges against them)"
    cal = analysis.calibration
    if cal is None or not labels_folded_in(run, analysis):
        return f"{who}, not yet in the analysis (`research report {run.id}` folds them in)"
    return f"{who}; {_against(cal, analysis.primary)}"


def _against(cal: Calibration, primary: str) -> str:
    f = cal.fields.get(primary)
    if f is None or not f.n:
        return f"none of `{primary}`: the judges' error on it is unmeasured"

    def share(e: Estimate | None) -> str:
        if e is None or e.value is None:
            return "n/a (no such labels)"
        return f"{e.value:.1%} [{e.lo:.1%}, {e.hi:.1%}]"

    kappa = "n/a" if f.kappa is None else f"{f.kappa:.2f}"
    return (
        f"judges against them on {primary} (n={f.n}): κ {kappa}, sensitivity "
        f"{share(f.sensitivity)}, specificity {share(f.specificity)}"
    )


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


def next_step(run: RunDir, waiting_at: str | None, analysis: AnalysisResult | None) -> str:
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
        done = f"Done. Read report.md (`research report {run.id}` rebuilds it from records)."
        return f"{done} {_calibrate(run, analysis)}".rstrip()
    if status == "rejected":
        return "Stopped: a checkpoint was rejected (see Decisions). Start a new run to go on."
    if status == "running":  # this process is running it, and writes this file
        return (
            f"Running (process {os.getpid()}): wait for it, or look at it with `research view "
            f"{run.id}`. If that process is gone (killed), `research resume {run.id}` continues."
        )
    if run.manifest.reason:
        return f"Stopped: {run.manifest.reason}. Continue with `research resume {run.id}`."
    return f"Continue with `research resume {run.id}`."


def _calibrate(run: RunDir, analysis: AnalysisResult | None) -> str:
    """What a finished run's judges still need from a human, if anything."""
    if not labels_folded_in(run, analysis):
        return f"`research report {run.id}` folds the new human labels into the analysis."
    if not run.records.labels() and "evaluate" in run.records.stages():
        return (
            f"The judges are not checked against a human yet: `research label {run.id}` "
            "labels a blinded sample of items (then `research report` sets the judges against "
            "you and corrects the rates for their error)."
        )
    return ""


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


def waiting_from_records(run: RunDir) -> str | None:
    """The checkpoint a run that awaits approval waits at, read from records: the one whose
    stage is done and undecided. For a refresh from outside the graph (labels, a rebuilt
    report, an amendment), which would otherwise overwrite the waiting status."""
    if run.manifest.status != "awaiting_approval":
        return None
    stages = run.records.stages()
    for checkpoint in run.loaded.protocol.checkpoints:
        row = stages.get(checkpoint)
        if row is not None and row.status == StageStatus.DONE:
            if run.records.decision(checkpoint) is None:
                return checkpoint
    return None


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
    analysis = load_result(run)
    waiting_at = waiting_at or waiting_from_records(run)
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
        numbers=key_numbers(run, analysis),
        next_step=next_step(run, waiting_at, analysis),
        last_log_entry=run.log.last_number,
        models=m.models,
        program=_program(m, run.root),
    )


def _program(m: Manifest, root: Path) -> str:
    """`deu (../../programs/deu/PROGRAM.md)`, as SUMMARY.md names the programme the run
    joined: from the run's directory, where the file is read."""
    line = program_line(m, root)
    return line.removeprefix("programme: ") if line else ""


def refresh_summary(run: RunDir, waiting_at: str | None = None) -> None:
    write_summary(run.path("SUMMARY.md"), build_summary(run, waiting_at))
