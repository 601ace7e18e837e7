"""What a report is, said before anything in it: the notices at the top of report.md and
report.html for a run whose numbers are not a result — an offline smoke test, a pilot, a run not
finished, a run with flags nobody has decided on.

A report is read from the top, and its summary box looks the same whatever the run was; these
notices are what keeps a smoke test from passing as a finding.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

from orchestrator.analysis import AnalysisResult
from orchestrator.flags import is_blocking
from orchestrator.protocol.schema import Protocol
from orchestrator.records import FlagRow, StageRow, StageStatus
from orchestrator.rundir import Manifest, RunDir
from orchestrator.state import STAGES

BannerKind = Literal["offline", "pilot", "incomplete", "flags"]


@dataclass(frozen=True)
class Banner:
    """One notice at the top of the report."""

    kind: BannerKind
    title: str
    """A few words: what the run is ("Offline smoke test: not a result")."""
    text: str
    """What that means for the numbers below, in a sentence or two (report markup)."""


@dataclass(frozen=True)
class RunFacts:
    """What the notices are made from. The report has the run open (`of_run`); the viewer,
    which never takes a run's lock, reads the same things read-only."""

    id: str
    manifest: Manifest
    protocol: Protocol
    stages: dict[str, StageRow]
    flags: list[FlagRow]

    @classmethod
    def of_run(cls, run: RunDir) -> RunFacts:
        records = run.records
        return cls(run.id, run.manifest, run.loaded.protocol, records.stages(), records.flags())


def banners(run: RunFacts, analysis: AnalysisResult | None) -> list[Banner]:
    """The notices this run's report opens with, most serious first; empty for a complete,
    full-size run on the protocol's own models with every flag decided. `analysis` is None
    while a run has none yet (the viewer of a run in progress)."""
    out = [_offline(run), _pilot(run, analysis), _incomplete(run, analysis), _flags(run)]
    return [b for b in out if b is not None]


def status_text(run: RunFacts) -> str:
    """The run's status as the summary box shows it: never a bare "complete" for a run whose
    numbers are not a result."""
    m = run.manifest
    qualifiers = []
    if m.offline:
        qualifiers.append("offline smoke test")
    if m.size == "pilot":
        qualifiers.append("pilot")
    if stages_not_done(run):
        qualifiers.append("incomplete")
    return f"{m.status} ({', '.join(qualifiers)})" if qualifiers else m.status


def stages_not_done(run: RunFacts) -> list[str]:
    """The stages before the report that have not finished. The report stage itself is left out:
    the report is written while it runs."""
    stages = run.stages
    return [
        s
        for s in STAGES
        if s != "report" and (s not in stages or stages[s].status != StageStatus.DONE)
    ]


def _offline(run: RunFacts) -> Banner | None:
    m = run.manifest
    if not m.offline:
        return None
    protocol = run.protocol
    planned = ", ".join(f"`{s.model}`" for s in protocol.subjects)
    analyst = protocol.analysis.qualitative is not None
    roles = "the judge and the analyst" if analyst else "and the judge"
    found = "rate, decision or theme" if analyst else "rate or decision"
    return Banner(
        "offline",
        "Offline smoke test: not a result",
        f"Made with the offline model `{m.local_model}`, which stood in for every subject "
        f"({planned}), {roles}: a smoke test of the pipeline, not a result. No {found} below "
        "says anything about the models the protocol names.",
    )


def _pilot(run: RunFacts, analysis: AnalysisResult | None) -> Banner | None:
    if run.manifest.size != "pilot":
        return None
    design = run.protocol.design
    text = (
        f"n per cell = {design.pilot_n_per_cell} (the protocol plans "
        f"{design.n_per_cell}), too small for the pre-registered decisions."
    )
    if analysis is not None and analysis.decisions is not None and analysis.decisions.hypotheses:
        counts = Counter(h.decision for h in analysis.decisions.hypotheses)
        listed = ", ".join(f"{n} {d.replace('_', ' ')}" for d, n in sorted(counts.items()))
        text += (
            " The analysis applies the pre-registered rules all the same "
            f"({listed}); at this size they check the pipeline and the materials, and their "
            "decisions are not the pre-registered result: that needs a full-size run."
        )
    return Banner("pilot", "Pilot run: too small to decide", text)


def _incomplete(run: RunFacts, analysis: AnalysisResult | None) -> Banner | None:
    missing = stages_not_done(run)
    if not missing:
        return None
    m = run.manifest
    why = f": {m.reason}" if m.reason else ""
    scored = ""
    if analysis is not None:
        scored = f" ({analysis.totals.scored} of {analysis.totals.items} items scored)"
    text = (
        f"The run is {m.status.replace('_', ' ')}{why}. Stages not done: "
        f"{', '.join(missing)}. Every number below is from what was recorded so far{scored} "
        "and is partial: a dash is a number the run has not produced yet. "
        f"`research resume {run.id}` finishes it."
    )
    return Banner("incomplete", "Incomplete run: partial numbers", text)


def _flags(run: RunFacts) -> Banner | None:
    open_ = [f for f in run.flags if f.resolution is None]
    if not open_:
        return None
    kinds = Counter(f.kind for f in open_)
    listed = ", ".join(f"{k} ({n})" for k, n in kinds.most_common())
    blocking = sum(is_blocking(f) for f in open_)
    text = (
        f"{len(open_)} flag(s) not yet decided at a checkpoint: {listed}. They are problems the "
        "evaluators or the checks raised with the data or the rubric; read them (Flags) before "
        "the numbers."
    )
    if blocking:
        text += f" `--yes` does not approve past {blocking} of them: a person decides those."
    return Banner("flags", "Unresolved flags", text)
