"""Stage progress as the terminal shows it: live bars on a terminal, plain lines otherwise.

Counts are the stage's own (an item counts when its result is recorded). The rate is the
average over this process's work on the stage, items it finished divided by the time since it
started them, so items already done before a resume do not inflate it; the ETA divides what is
left by that rate, and both read "-" until the first item is finished. Piped to a file, nothing
redraws: each stage prints a line when it starts, one every tenth of its items or every
`heartbeat_s` seconds (also when nothing moved), and one when it stops.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
)
from rich.text import Text

from orchestrator.cli.ui import console as default_console
from orchestrator.cli.ui import terminal_approver

if TYPE_CHECKING:
    from orchestrator.panel import CheckpointDecision, Panel


@dataclass
class Stage:
    """One stage's counts in this process."""

    name: str
    total: int
    done: int
    base: int
    """Items already done when this process started the stage: not counted into the rate."""
    t0: float = field(default_factory=time.monotonic)
    active: bool = True
    printed_at: float = field(default_factory=time.monotonic)
    printed_done: int = 0

    def elapsed(self, now: float) -> float:
        return max(0.0, now - self.t0)

    def rate(self, now: float) -> float | None:
        """Items per second over this session; None before the first one."""
        made, spent = self.done - self.base, self.elapsed(now)
        return made / spent if made > 0 and spent > 0 else None

    def eta(self, now: float) -> float | None:
        rate = self.rate(now)
        return None if rate is None else max(0, self.total - self.done) / rate


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def per(rate: float | None) -> str:
    if rate is None:
        return "-"
    return f"{rate:.1f}/s" if rate >= 1 else f"{rate * 60:.1f}/min"


class _Pace(ProgressColumn):
    """Elapsed time, average rate and ETA of a stage, computed when drawn."""

    def render(self, task) -> Text:  # noqa: ANN001 — rich's Task
        st: Stage = task.fields["stage"]
        now = time.monotonic()
        return Text(
            f"{clock(st.elapsed(now))}  {per(st.rate(now))}  eta {clock(st.eta(now))}",
            style="cyan",
        )


class Bars:
    """The `Progress` the CLI gives a run: rich bars on a terminal, plain lines elsewhere."""

    def __init__(self, console: Console | None = None, heartbeat_s: float = 10.0) -> None:
        self.console = console or default_console
        self.plain = not self.console.is_terminal
        self.heartbeat_s = heartbeat_s
        self.stages: dict[str, Stage] = {}
        self.lock = threading.RLock()  # stages report from LangGraph's worker threads
        self.progress = Progress(
            TextColumn("[bold]{task.description:<9}"),
            BarColumn(),
            MofNCompleteColumn(),
            _Pace(),
            console=self.console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.live = False
        self._halt = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pause()
        self._halt.set()
        if self._beat is not None:
            self._beat.join(timeout=5)

    def _pause(self) -> None:
        if self.live:
            self.progress.stop()
            self.live = False

    def approver(self, panel: Panel) -> CheckpointDecision | None:
        """Ask at a checkpoint with the bars stopped: a live display redraws over a prompt."""
        self._pause()
        return terminal_approver(panel)

    def start(self, stage: str, total: int, done: int = 0) -> None:
        with self.lock:
            st = self.stages.get(stage)
            if st is not None and st.active:  # new counts for a stage under way (a batch's)
                st.total, st.done = total, done
                self._moved(st)
                return
            st = Stage(stage, total, done, base=done, printed_done=done)
            self.stages[stage] = st
            if self.plain:
                self._say(st, _started(st))
                self._heartbeat()
                return
            if not self.live:
                self.progress.start()
                self.live = True
            if stage in self.tasks:
                self.progress.update(self.tasks[stage], total=total, completed=done, stage=st)
            else:
                self.tasks[stage] = self.progress.add_task(
                    stage, total=total, completed=done, stage=st
                )

    def advance(self, stage: str, n: int = 1) -> None:
        with self.lock:
            st = self.stages.get(stage)
            if st is None or not st.active:
                return
            st.done = min(st.done + n, st.total)
            self._moved(st)

    def stop(self, stage: str) -> None:
        with self.lock:
            st = self.stages.get(stage)
            if st is None or not st.active:
                return
            st.active = False
            if self.plain:
                self._say(st, _stopped(st, time.monotonic()))

    def _moved(self, st: Stage) -> None:
        if not self.plain:
            self.progress.update(self.tasks[st.name], total=st.total, completed=st.done)
            return
        every = max(1, st.total // 10)
        now = time.monotonic()
        if st.done >= st.total:  # its stop line says it
            return
        if st.done - st.printed_done >= every or now - st.printed_at >= self.heartbeat_s:
            self._say(st, _going(st, now))

    def _say(self, st: Stage, line: str) -> None:
        st.printed_at, st.printed_done = time.monotonic(), st.done
        self.console.print(line, highlight=False, soft_wrap=True, markup=False)
        self.console.file.flush()

    def _heartbeat(self) -> None:
        """A line every `heartbeat_s` for each stage under way, also when nothing moved (a
        stage waiting on a slow API still says it is alive). A daemon thread: never keeps the
        process from exiting."""
        if self._beat is not None:
            return

        def beat() -> None:
            while not self._halt.wait(min(1.0, self.heartbeat_s / 4)):
                now = time.monotonic()
                with self.lock:
                    for st in self.stages.values():
                        if st.active and now - st.printed_at >= self.heartbeat_s:
                            self._say(st, _going(st, now))

        self._beat = threading.Thread(target=beat, name="progress-heartbeat", daemon=True)
        self._beat.start()


def _started(st: Stage) -> str:
    todo = st.total - st.done
    if st.done:
        return f"{st.name}: started, {todo} of {st.total} to do ({st.done} already done)"
    return f"{st.name}: started, {todo} to do"


def _going(st: Stage, now: float) -> str:
    return (
        f"{st.name}: {st.done}/{st.total} after {clock(st.elapsed(now))}, "
        f"{per(st.rate(now))} average, eta {clock(st.eta(now))}"
    )


def _stopped(st: Stage, now: float) -> str:
    took = clock(st.elapsed(now))
    if st.done >= st.total:
        return f"{st.name}: done, {st.done}/{st.total} in {took}, {per(st.rate(now))} average"
    return f"{st.name}: stopped at {st.done}/{st.total} after {took}"
