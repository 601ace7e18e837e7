"""The report's prose lists: what went differently from the plan (deviations, from records and
LOG.md) and what limits the conclusions (limitations, from the analysis and its inputs)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from orchestrator.analysis import AnalysisResult, primary_verdicts
from orchestrator.analysis.result import Agreement
from orchestrator.records import AmendmentStatus, VerdictStatus
from orchestrator.rundir import RunDir


def read_artifact(run: RunDir, name: str) -> dict[str, Any] | None:
    """artifacts/<name> as parsed JSON, or None when the file does not exist."""
    path = run.path("artifacts", name)
    return json.loads(path.read_text()) if path.exists() else None


def deviations(run: RunDir, amendments: list[dict[str, Any]]) -> list[str]:
    """What a reader should know went differently from the plan, from records and LOG.md."""
    out = _size_and_models(run) + _unscored(run)
    entries = run.log.entries()
    out += [f"Evaluator replaced: {e.text}" for e in entries if e.kind == "replaced"]
    out += _evaluators(run)
    out += _checkpoints(run)
    stops = sum(e.kind == "interrupted" for e in entries)
    if stops:
        out.append(
            f"The run was interrupted {stops} time(s) and resumed; recorded calls were "
            "not made again."
        )
    for e in entries:
        if e.kind == "error":
            out.append(f"Error in `{e.stage}`: {' '.join(e.text.split())[:300]}")
    open_flags = [f for f in run.records.flags() if not f.resolution]
    if open_flags:
        out.append(f"{len(open_flags)} flag(s) still open (see Flags).")
    approved = [x for x in amendments if x["status"] == AmendmentStatus.APPROVED]
    if approved:
        out.append(f"The pre-registered analysis was amended {len(approved)} time(s) (below).")
    return out


def _size_and_models(run: RunDir) -> list[str]:
    m, out = run.manifest, []
    protocol = run.loaded.protocol
    if m.size == "pilot":
        planned_n = protocol.design.n_per_cell
        out.append(
            f"Pilot size: {protocol.design.pilot_n_per_cell} items per cell instead of the "
            f"planned {planned_n}."
        )
    if m.offline:
        planned = ", ".join(f"`{s.model}`" for s in protocol.subjects)
        out.append(
            f"Offline: the subjects ({planned}) and the judge were replaced by the local "
            f"model `{m.local_model}`."
        )
    return out


def _unscored(run: RunDir) -> list[str]:
    items = run.records.items()
    verdicts = primary_verdicts(run.records.verdicts())
    reasons = Counter(
        (verdicts[i.id].reason or "no reason given") if i.id in verdicts else "no verdict"
        for i in items
        if i.id not in verdicts or verdicts[i.id].status != VerdictStatus.SCORED
    )
    if not reasons:
        return []
    listed = "; ".join(f"{r} ({n})" for r, n in reasons.most_common(5))
    unscored = sum(reasons.values())
    return [
        f"{unscored} of {len(items)} items have no scored verdict and are left out of the "
        f"rates: {listed}."
    ]


def _evaluators(run: RunDir) -> list[str]:
    """Failed comprehension checks, and evaluators that went on in a fresh conversation."""
    rec, out = run.records, []
    failed = [c for c in rec.comprehension() if not c.passed]
    if failed:
        who = ", ".join(sorted({c.evaluator for c in failed}))
        out.append(f"{len(failed)} failed comprehension check attempt(s) ({who}).")
    restarts = []
    for name in sorted({b.evaluator for b in rec.batches()}):
        later = [s.reason for s in rec.sessions(name) if s.continued]
        if later:
            restarts.append(f"{name} ({', '.join(later)})")
    if restarts:
        listed = "; ".join(restarts)
        out.append(f"Evaluators continued in a fresh conversation from their notes: {listed}.")
    return out


def _checkpoints(run: RunDir) -> list[str]:
    """Checkpoint decisions a reader should know of: not approved, automatic, or with a note."""
    out = []
    for d in run.records.decisions():
        where = f"Checkpoint `{d.checkpoint}`"
        if d.decision != "approve":
            note = f": “{d.note}”" if d.note else "."
            out.append(f"{where} {d.decision}ed by {d.by}{note}")
        elif d.by == "--yes":
            out.append(f"{where} approved automatically (`--yes`), without a human review.")
        elif d.note:
            out.append(f"{where} approved by {d.by} with a note: “{d.note}”")
    return out


def limitations(
    run: RunDir,
    a: AnalysisResult,
    agreement: Agreement | None,
    qualitative: dict[str, Any] | None,
) -> list[str]:
    """What limits the conclusions, in the order a reader should weigh it."""
    m, out = run.manifest, []
    if m.size == "pilot":
        out.append("Pilot size: intervals are wide; treat every difference as provisional.")
    if m.offline:
        out.append(
            f"Offline run: subjects and judge are the local model `{m.local_model}`, a "
            "small instruction-tuned model. The pipeline is exercised end to end; the "
            "numbers say nothing about frontier models."
        )
    t = a.totals
    if t.unscored:
        out.append(
            f"{t.unscored} of {t.items} items are unscored and excluded from the "
            "rates; the missing-data bounds show how far they could move them, and "
            "`artifacts/verdicts.jsonl` gives each reason."
        )
    out += _agreement_limits(agreement, a.primary) + _human_limits(a)
    out += _constraint_limits(a)
    if a.probes and a.probes.metrics:
        readers = ", ".join(f"`{x}`" for x in a.probes.models)
        out.append(
            f"Truesight readouts come from {readers}; their associations with verdicts are "
            "exploratory (p-values not corrected for the number of metrics)."
        )
    out += _probe_validity_limits(a)
    if a.correction is None and a.contrasts:
        out.append("Contrast p-values are not corrected for multiple comparisons.")
    if qualitative and qualitative.get("limitations"):
        by = f" (by the offline model `{m.local_model}`, not read by a person)" if m.offline else ""
        text = " ".join(str(qualitative["limitations"]).split())
        out.append(f"Qualitative analysis{by}: {text}")
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _probe_validity_limits(a: AnalysisResult) -> list[str]:
    """A line per trained probe without the positive verdict, and one naming the zero-shot
    readouts that separate none of the transfer sets."""
    if a.probes is None:
        return []
    out = [
        f"Trained probe `{v.name}`: {v.verdict}. Do not read its per-cell figures "
        f"(`linear.{v.name}`) as {v.positive} vs {v.negative}."
        for v in a.probes.validity or []
        if not v.reads_more
    ]
    separating = {
        r.metric for r in a.probes.readout_transfer or [] if r.p is not None and r.p < 0.05
    }
    blind = sorted({r.metric for r in a.probes.readout_transfer or []} - separating)
    if blind:
        listed = ", ".join(f"`{m}`" for m in blind)
        out.append(
            f"Zero-shot readouts that separate none of the transfer sets (Mann–Whitney p ≥ "
            f"0.05): {listed}; their per-cell figures say little about these labels."
        )
    return out


def _agreement_limits(agreement: Agreement | None, primary: str) -> list[str]:
    """Judge agreement on the primary outcome, always: how far the verdicts are a measurement."""
    if agreement is None:
        return ["Agreement between evaluators was not measured for this run."]
    f = agreement.fields.get(primary)
    n = f.overlap_n if f is not None else agreement.overlap_items
    if f is None or not n:
        return [
            f"No item was judged by two evaluators, so how far the judges agree on `{primary}` "
            "is unknown; the rates are single judges' verdicts."
        ]
    kappa = "undefined where every verdict is the same: raw agreement only"
    if f.kappa is not None:
        kappa = f"{f.kappa:.2f}"
    text = (
        f"Judges agree on `{primary}` in {_share(f.agree)} of {n} overlap item(s), Cohen's κ "
        f"{kappa}"
    )
    if f.self_n:
        text += (
            f"; an evaluator judging an item twice agrees in {_share(f.self_agree)} of {f.self_n}"
        )
    text += (
        ". The rates are the judges' verdicts, with their errors: agreement is not accuracy."
        if n >= 30
        else f". {n} overlap items give only a rough figure."
    )
    return [text]


def _share(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def _constraint_limits(a: AnalysisResult) -> list[str]:
    """Verdicts the design makes impossible, when the judges gave any."""
    broken = [c for c in a.constraints or [] if c.violations]
    return [
        f"Judges gave {c.outcome} = {c.value} in {c.violations} of {c.checked} scored items where "
        f"the design rules it out ({c.rule}): those verdicts are judge errors, and the "
        f"{c.outcome} rates carry errors like them (see Constraints)."
        for c in broken
    ]


def _human_limits(a: AnalysisResult) -> list[str]:
    """The judges' error against a researcher's labels, where it is known."""
    cal = a.calibration
    if cal is None:
        return [
            "The judges were not checked against human labels (`research label`): their "
            "error is unmeasured, and every rate is the judges' own, uncorrected."
        ]
    out = []
    for name in a.outcomes:
        f = cal.fields.get(name)
        if f is None or not f.n:
            continue
        se, sp = f.sensitivity, f.specificity
        if se is None or sp is None or se.value is None or sp.value is None:
            which = "true" if se is None or se.value is None else "false"
            out.append(
                f"`{name}` has {f.n} human label(s) but none {which}, so the judges' error on "
                "it is only partly known and its rates are not corrected."
            )
            continue
        out.append(
            f"Against {f.n} human label(s) of `{name}`, the judges' sensitivity was "
            f"{_pct(se.value)} [{_pct(se.lo)}, {_pct(se.hi)}] and specificity {_pct(sp.value)} "
            f"[{_pct(sp.lo)}, {_pct(sp.hi)}]; the corrected rates (Judges against a human) "
            "carry that error, the raw ones do not."
        )
    return out or [
        f"{cal.items} item(s) have human labels, but none of an outcome: no rate is corrected."
    ]


def judge_error(a: AnalysisResult) -> dict[str, str]:
    """What the decisions and the false alarms rest on: the judges' own rates, and what their
    measured error (human labels of the primary outcome) does to them. Plain text, for both the
    markdown and the html report."""
    f = a.calibration.fields.get(a.primary) if a.calibration else None
    se = f.sensitivity.value if f and f.sensitivity else None
    sp = f.specificity.value if f and f.specificity else None
    if f is None or not f.n or se is None or sp is None:
        unmeasured = (
            "Rates are the judges' own: their error against a human is unmeasured "
            "(research label), so how far it moves an estimate is unknown."
        )
        return {"decisions": unmeasured, "false_alarms": unmeasured}
    factor = se + sp - 1
    decisions = (
        f"Estimates are the judges' own rates, not corrected for their error. Against {f.n} "
        f"human label(s) of {a.primary} (sensitivity {_pct(se)}, specificity {_pct(sp)}), a "
        f"difference between two rates is shrunk by the factor Se + Sp − 1 = {factor:.2f}: a "
        "decision that an effect exists is conservative, one that it is absent or small (equal, "
        "no_increase, no_decrease, or within a margin) is not. Corrected rates are under "
        "Judges against a human."
    )
    false_alarms = (
        f"These are the judges' own rates; with their measured false-positive rate "
        f"(1 − specificity = {_pct(1 - sp)}) a cell whose truth is 0 still shows about that "
        "much. The rates corrected for it are under Judges against a human."
    )
    return {"decisions": decisions, "false_alarms": false_alarms}
