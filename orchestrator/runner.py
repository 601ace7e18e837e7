"""Start, resume and approve runs: the Python API the CLI is a thin layer over.

The runner drives the compiled graph with a SQLite checkpointer in the run directory. At each
checkpoint interrupt it gets a decision (`--yes`, the terminal, or one recorded earlier by
`research approve`), records it, and resumes. With no way to ask, it stops cleanly and says how to
continue. Whatever happens — a rejection, Ctrl-C, a crash — LOG.md and SUMMARY.md say so.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from agents.client import AuthenticationFailed, Unavailable
from orchestrator import amend, program
from orchestrator.analysis import load_analysis
from orchestrator.context import NoProgress, Progress, RunContext, as_run, models_of
from orchestrator.decide import (
    PENDING_ROUNDS,
    Outcome,
    at_checkpoint,
    record_decision,
    send_back,
)
from orchestrator.errors import ApiUnavailable, RunDirUnwritable, RunInterrupted, UserError
from orchestrator.graph import build_graph
from orchestrator.live import LiveProgress
from orchestrator.nodes.checkpoint import RETRY
from orchestrator.panel import Approver, CheckpointDecision, amendment_panel
from orchestrator.pending import pending_text
from orchestrator.protocol import load_protocol
from orchestrator.protocol.schema import Protocol
from orchestrator.records import DecisionRow
from orchestrator.report import write_report
from orchestrator.rundir import RunDir, runs_root
from orchestrator.settings import Settings
from orchestrator.state import STAGES
from orchestrator.summary import refresh_summary
from orchestrator.unwritable import unwritable
from orchestrator.worker import local_worker, needs_worker


def start(
    protocol_path: str | Path,
    *,
    runs_dir: str | Path | None = None,
    run_id: str | None = None,
    pilot: bool = False,
    offline: bool = False,
    yes: bool = False,
    accept_flags: bool = False,
    approver: Approver | None = None,
    progress: Progress | None = None,
    program_name: str | None = None,
    programs_dir: str | Path | None = None,
) -> Outcome:
    """Create a run from the protocol file and drive it until it ends or waits; with
    `program_name`, the run joins that programme. The settings are read here, once: the whole
    run uses them."""
    settings = Settings.from_env()
    joined = None
    if program_name is not None:
        joined = program.open_program(programs_dir or settings.programs_dir, program_name)
    loaded = load_protocol(protocol_path)
    local = settings.local_model if offline else None
    protocol = as_run(loaded.protocol, offline=offline, local_model=local)
    check_credentials(protocol, settings)
    run = RunDir.create(
        runs_root(runs_dir or settings.runs_dir),
        loaded,
        run_id=run_id,
        pilot=pilot,
        offline=offline,
        local_model=local,
        models=models_of(protocol),
    )
    with run:
        size = "pilot" if pilot else "full"
        where = f", offline on {local}" if offline else ""
        models = ", ".join(run.manifest.models)
        text = (
            f"Run created from {loaded.path} (sha256 {loaded.sha256[:12]}), {size} size{where}."
            f"\nModels: {models}"
        )
        run.log.append("run", "orchestrator", "created", text)
        if joined is not None:
            program.join(run, joined)
        refresh_summary(run)
        run.history.commit("run created")
        return _drive(run, protocol, settings, yes, approver, progress, accept_flags)


def resume(
    run_ref: str,
    *,
    runs_dir: str | Path | None = None,
    yes: bool = False,
    accept_flags: bool = False,
    approver: Approver | None = None,
    progress: Progress | None = None,
) -> Outcome:
    """Drive a stopped run on from where it stands, with the settings read now (once)."""
    settings = Settings.from_env()
    with RunDir.open(runs_root(runs_dir or settings.runs_dir), run_ref) as run:
        m = run.manifest
        # a run's manifest names its local model; the environment's is for manifests without one
        local = m.local_model or settings.local_model
        protocol = as_run(run.loaded.protocol, offline=m.offline, local_model=local)
        if m.status in ("complete", "rejected"):
            return Outcome(run.id, run.root, m.status)
        if (row := amend.pending(run)) is not None:
            decision = approver(amendment_panel(run, row)) if approver is not None else None
            if decision is None:
                raise UserError(
                    f"amendment {row.n} to the analysis of {run.id} is pending: decide it with "
                    f"`research approve {run.id} [--reject]` before resuming"
                )
            amend.decide(run, row, decision.decision == "approve", decision.by, decision.note)
            protocol = as_run(run.loaded.protocol, offline=m.offline, local_model=local)
        check_credentials(protocol, settings)
        run.log.append("run", "orchestrator", "resumed", f"Resumed by process {os.getpid()}.")
        return _drive(run, protocol, settings, yes, approver, progress, accept_flags)


def approve(
    run_ref: str,
    *,
    runs_dir: str | Path | None = None,
    reject: bool = False,
    note: str = "",
    by: str | None = None,
    leave_pending: bool = False,
) -> DecisionRow:
    """Decide what the run waits on: a pending amendment first, else its checkpoint. Approving
    the evaluate checkpoint past pending items takes `leave_pending`: they stay unjudged."""
    with RunDir.open(runs_root(runs_dir), run_ref) as run:
        if (row := amend.pending(run)) is not None:
            amend.decide(run, row, not reject, by or user_name(), note)
            return run.records.decision(f"amendment-{row.n}")  # type: ignore[return-value]
        waiting = waiting_checkpoint(run)
        if waiting is None:
            raise UserError(
                f"{run.id} is not waiting at a checkpoint (status: {run.manifest.status})"
            )
        pending = pending_text(run.records) if waiting == "evaluate" else None
        if pending is not None and not reject and not leave_pending:
            raise UserError(
                f"{run.id}: {pending}. `research resume {run.id}` judges them first; to approve "
                "leaving them unjudged (missing data, with their reason), add --leave-pending"
            )
        if pending is not None and not reject:
            note = f"{note} (left pending: {pending})".strip()
        d = CheckpointDecision("reject" if reject else "approve", note, by or user_name())
        row = record_decision(run, waiting, d)
        if reject:  # nothing left to run: the run ends here, with the note on record
            run.set_status("rejected")
            program.record(run)
            refresh_summary(run)
            run.history.commit("run rejected")
        return row


def check_credentials(protocol: Protocol, settings: Settings) -> None:
    refs = [*protocol.subjects, protocol.evaluation.judge]
    cloud = sorted({r.model for r in refs if r.provider == "anthropic"})
    if cloud and not settings.anthropic_api_key:
        raise UserError(
            f"ANTHROPIC_API_KEY is not set, and this protocol calls {', '.join(cloud)} through "
            "the Anthropic API. Set the key, or run on the local model with --offline."
        )
    openai_models = sorted({r.model for r in refs if r.provider == "openai"})
    if openai_models and importlib.util.find_spec("openai") is None:
        raise UserError(
            f"This protocol calls {', '.join(openai_models)} with provider: openai, and the "
            "openai package is not installed. Install it with: pip install 'research[openai]'."
        )
    if openai_models and not settings.openai_api_key:
        raise UserError(
            f"OPENAI_API_KEY is not set, and this protocol calls {', '.join(openai_models)} "
            "with provider: openai. Set the key (any non-empty value for a local server that "
            "checks none), or run on the local model with --offline."
        )


def waiting_checkpoint(run: RunDir) -> str | None:
    with SqliteSaver.from_conn_string(str(run.path("state.sqlite"))) as saver:
        snap = build_graph(saver).get_state({"configurable": {"thread_id": run.id}})
        return _interrupt_of(snap)


def _interrupt_of(snap) -> str | None:  # noqa: ANN001 — a LangGraph StateSnapshot
    for task in snap.tasks:
        for intr in task.interrupts:
            return intr.value["checkpoint"]
    return None


def user_name() -> str:
    return Settings.from_env().user


def _drive(
    run: RunDir,
    protocol: Protocol,
    settings: Settings,
    yes: bool,
    approver: Approver | None,
    progress: Progress | None,
    accept_flags: bool = False,
) -> Outcome:
    """Run the graph from where `run` stands, with the settings its start or resume read."""
    live = LiveProgress(progress or NoProgress(), run)
    ctx = RunContext(run, protocol, live, given_settings=settings)
    # LangGraph's thread pool defaults to cpu+4 workers: on a 2-core laptop 8 evaluators would
    # run in two waves; they wait on the network, not the CPU, so let all of them run at once,
    # and the probe stage's readouts beside them (a remote judge: nodes/probe.py)
    config = {
        "configurable": {"thread_id": run.id},
        "max_concurrency": max(8, protocol.evaluation.evaluators) + 1,
    }
    with ExitStack() as stack:
        stack.enter_context(_stop_on_sigint(ctx))
        saver = stack.enter_context(SqliteSaver.from_conn_string(str(run.path("state.sqlite"))))
        graph = build_graph(saver)
        try:
            if needs_worker(protocol):
                url = stack.enter_context(local_worker(run, protocol, settings))
                if url != settings.worker_url:  # another run's worker was at the usual URL
                    ctx.given_settings = settings.model_copy(update={"worker_urls": (url,)})
            snap = graph.get_state(config)
            pending: dict | Command | None = {} if not snap.values and not snap.next else None
            rounds = 0  # times this process sent evaluate back for its pending items
            while True:
                if (waiting := _interrupt_of(snap)) is not None:
                    if rounds < PENDING_ROUNDS and send_back(run, waiting, settings):
                        rounds += 1
                        pending = Command(resume=RETRY)
                    else:
                        stopped = at_checkpoint(run, protocol, waiting, yes, approver, accept_flags)
                        if stopped is not None:
                            program.record(run)
                            return stopped
                        pending = Command(resume=True)
                elif snap.values and not snap.next and not snap.tasks:
                    # the graph has reached its end
                    return _finish(run, protocol, snap.values.get("decisions", {}))
                # A step whose tasks finished but whose checkpoint was never written (killed in
                # between) shows no `next` yet still holds those tasks: invoking applies their
                # saved writes and goes on. Taking it for the end would skip every later stage.
                run.set_status("running")
                graph.invoke(pending, config, context=ctx, durability="sync")
                snap = graph.get_state(config)
                pending = None
        except BaseException as e:
            failure = unwritable(run.root, e) or e
            _record_failure(run, failure)
            if failure is not e:
                raise failure from e
            if isinstance(e, AuthenticationFailed):
                raise UserError(f"the API refused the credentials: {e}") from e
            if isinstance(e, KeyboardInterrupt) and not isinstance(e, RunInterrupted):
                raise RunInterrupted(run.id) from e
            if isinstance(e, Unavailable):
                raise ApiUnavailable(
                    f"the API kept failing: {e}\nEverything answered so far is kept; continue "
                    f"with `research resume {run.id}`"
                ) from e
            raise


def _record_failure(run: RunDir, e: BaseException) -> None:
    """Say in LOG.md, manifest.json and SUMMARY.md why the run stopped (Ctrl-C, refused
    credentials, a full disk, a crash), in each of them that can still be written: a disk that
    is full or read-only must not turn the error being recorded into another one."""
    if isinstance(e, KeyboardInterrupt):
        kind, status, reason = "interrupted", "interrupted", "Interrupted (Ctrl-C)"
    elif isinstance(e, AuthenticationFailed):
        kind, status, reason = "error", "failed", f"Authentication failed: {e}"
    elif isinstance(e, Unavailable):
        kind, status, reason = "error", "failed", f"Stopped: the API kept failing: {e}"
    elif isinstance(e, RunDirUnwritable):
        kind, status, reason = "error", "failed", str(e)
    elif isinstance(e, Exception):
        kind, status, reason = "error", "failed", f"{type(e).__name__}: {e}"
    else:  # SystemExit and the like: nothing to record
        return
    text = f"{reason}\n\nContinue with `research resume {run.id}`."
    steps = (
        lambda: run.log.append(_current_stage(run), "orchestrator", kind, text),
        lambda: run.set_status(status, reason),
        lambda: program.record(run),
        lambda: refresh_summary(run),
    )
    for step in steps:
        try:
            step()
        except Exception as again:
            if unwritable(run.root, again) is None:
                raise


def _finish(run: RunDir, protocol: Protocol, decisions: dict[str, str]) -> Outcome:
    rejected = [c for c, d in decisions.items() if d == "reject"]
    status = "rejected" if rejected else "complete"
    run.set_status(status)
    text = f"Run stopped: `{rejected[0]}` rejected." if rejected else "Run complete."
    run.log.append(rejected[0] if rejected else "run", "orchestrator", status, text)
    _final_report(run, protocol)
    program.record(run)
    refresh_summary(run)
    run.history.commit(f"run {status}")
    return Outcome(run.id, run.root, status)


def _final_report(run: RunDir, protocol: Protocol) -> None:
    """Re-render a report written before the last checkpoint, so that its decisions, flag
    resolutions and status include that checkpoint's (the figures are not redrawn)."""
    analysis = run.path("artifacts", "analysis.json")
    if "report" in run.records.stages() and analysis.exists():
        write_report(run, protocol, load_analysis(analysis), redraw=False)


@contextmanager
def _stop_on_sigint(ctx: RunContext) -> Iterator[None]:
    """Ctrl-C: tell the nodes in worker threads to stop, and interrupt the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        ctx.stop.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _current_stage(run: RunDir) -> str:
    done = run.records.stages()
    return next((s for s in STAGES if s not in done), "run")
