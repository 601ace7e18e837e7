"""The stages a running process has in progress, kept where `research status` can read them.

`LiveProgress` wraps the display a run was given (bars, or nothing) and writes each stage's
counts into the run's lock file as they change (see `lockfile`): another process asking about the
run reads "collect 37/400" there instead of a SUMMARY.md written before the stage began.
"""

from __future__ import annotations

import threading

from orchestrator.context import Progress
from orchestrator.lockfile import StageCount
from orchestrator.rundir import RunDir


class LiveProgress:
    """A `Progress` that forwards to `inner` and keeps the live counts in the run's lock file."""

    def __init__(self, inner: Progress, run: RunDir):
        self.inner, self.run = inner, run
        self.counts: dict[str, StageCount] = {}
        self.lock = threading.Lock()  # nodes report from LangGraph's worker threads

    def start(self, stage: str, total: int, done: int = 0) -> None:
        self._set(stage, StageCount(stage, done, total))
        self.inner.start(stage, total, done)

    def advance(self, stage: str, n: int = 1) -> None:
        with self.lock:
            c = self.counts.get(stage)
        if c is not None:
            self._set(stage, StageCount(stage, min(c.done + n, c.total), c.total))
        self.inner.advance(stage, n)

    def stop(self, stage: str) -> None:
        self._set(stage, None)
        self.inner.stop(stage)

    def _set(self, stage: str, count: StageCount | None) -> None:
        with self.lock:
            if count is None:
                self.counts.pop(stage, None)
            else:
                self.counts[stage] = count
            try:
                self.run.note_live(list(self.counts.values()))
            except OSError:
                pass  # a line for `status` only: a disk that refuses it must not stop the run
