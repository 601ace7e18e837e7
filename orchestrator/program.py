"""Runs joined to a research programme (memory/program.py): the programme's line for a run, kept
up to date as the run starts and ends.

A run joins with `research run PROTOCOL --program NAME`; its manifest names the programme and
where its files are. When the run ends (complete, rejected, failed or interrupted) its line in
PROGRAM.md says so, with the hypotheses' decisions and estimates when there is an analysis, and
the programme's LOG.md gets an entry. Writing the same line again changes nothing, so a resumed
run that ends again never adds a second line or a repeated entry.
"""

from __future__ import annotations

from pathlib import Path

from memory import ProgramDir, RunLine, utc_stamp
from orchestrator.analysis import load_analysis
from orchestrator.analysis.decision_text import decision_word, interval_text
from orchestrator.analysis.result import AnalysisResult, TestComponent, TestResult
from orchestrator.errors import UserError
from orchestrator.rundir import RunDir
from orchestrator.settings import Settings

ENDED = ("complete", "rejected", "failed", "interrupted")


def programs_root(programs_dir: str | Path | None) -> Path:
    """`programs_dir` if given, else RESEARCH_PROGRAMS_DIR, else ./programs."""
    return Path(programs_dir or Settings.from_env().programs_dir)


def create_program(programs_dir: str | Path | None, name: str, question: str) -> ProgramDir:
    root = programs_root(programs_dir)
    try:
        return ProgramDir.create(root, name, question)
    except FileExistsError:
        raise UserError(f"programme {name!r} already exists in {root}") from None
    except ValueError as e:
        raise UserError(str(e)) from e


def open_program(programs_dir: str | Path | None, name: str) -> ProgramDir:
    root = programs_root(programs_dir)
    try:
        return ProgramDir.open(root, name)
    except FileNotFoundError:
        raise UserError(
            f"no programme {name!r} in {root}: create it with "
            f"`research program {name} --question TEXT`"
        ) from None


def of_run(run: RunDir) -> ProgramDir | None:
    """The programme the run joined, or None (not joined, or its directory is gone)."""
    where = run.manifest.program_dir
    if where is None:
        return None
    try:
        return ProgramDir.open(Path(where).parent, Path(where).name)
    except FileNotFoundError:
        return None


def join(run: RunDir, program: ProgramDir) -> None:
    """Name the programme in the run's manifest and list the run in PROGRAM.md as started."""
    run.update_manifest(program=program.name, program_dir=str(program.root.resolve()))
    size = run.manifest.size
    text = f"{run.id} joined, from {run.manifest.protocol_source} ({size} size)."
    program.append("run", "orchestrator", "joined", text)
    record(run)
    run.log.append("run", "orchestrator", "program", f"Joined programme {program.name}.")


def record(run: RunDir) -> None:
    """Bring the run's line in its programme up to date, and log an ended run there once. A run
    in no programme, or whose programme's files are gone (said in the run's LOG), is left."""
    if run.manifest.program is None:
        return
    program = of_run(run)
    if program is None:
        text = f"Programme {run.manifest.program} not found at {run.manifest.program_dir}."
        run.log.append("run", "orchestrator", "warning", text)
        return
    m = run.manifest
    line = RunLine(
        run_id=run.id,
        protocol_id=m.protocol_id,
        status=m.status,
        result=result_line(run),
        updated=utc_stamp(),
    )
    try:
        entry = ("run", "orchestrator", m.status, f"{run.id}: {line.result}")
        program.record_run(line, entry if m.status in ENDED else None)
    except OSError as e:  # the programme's disk must not turn a run's end into an error
        text = f"Could not update programme {program.name} at {program.root}: {e}"
        run.log.append("run", "orchestrator", "warning", text)


def result_line(run: RunDir) -> str:
    """One line of result: each hypothesis' decision with its estimates, and why a run that did
    not complete stopped."""
    m = run.manifest
    path = run.path("artifacts", "analysis.json")
    decided = decisions_line(load_analysis(path)) if path.exists() else ""
    size = "pilot" if m.size == "pilot" else "full size"
    if m.status == "complete":
        return f"{size}; {decided or 'no hypotheses decided'}"
    if m.status in ("failed", "interrupted"):
        reason = f"{m.status}: {m.reason}" if m.reason else m.status
        return f"{size}; stopped ({reason}); resume with `research resume {run.id}`"
    if m.status == "rejected":
        return f"{size}; rejected at a checkpoint" + (f"; {decided}" if decided else "")
    return f"{size}; {m.status.replace('_', ' ')}"


def decisions_line(analysis: AnalysisResult) -> str:
    """`H1 inconclusive (claude-sonnet -33.3 [-79.2, +29.1], claude-haiku +33.3 [...]); H3 …`:
    each hypothesis' decision and its estimates, named by subject (or by the statistic when the
    test has one estimate)."""
    if analysis.decisions is None:
        return ""
    parts = []
    for h in analysis.decisions.hypotheses:
        estimates = [_estimate(t, c) for t in h.tests for c in t.components]
        shown = f" ({', '.join(estimates)})" if estimates else ""
        parts.append(f"{h.id} {decision_word(h.decision)}{shown}")
    return "; ".join(parts)


def _estimate(t: TestResult, c: TestComponent) -> str:
    name = t.statistic if len(t.components) == 1 else c.label
    return f"{name} {interval_text(c)}"
