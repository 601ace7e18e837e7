"""A run directory's `.lock`: who owns the run, and what it is doing right now.

The owner holds an exclusive `flock` on the file for as long as it has the run open. The file
holds its pid on the first line and, once stages report progress, a second line of JSON with
the stages in progress and their counts. A reader (`research status`) learns whether a process
is running the run and how far it has got without opening the records: the lock being held is
what makes the live line true, so a line left behind by a killed process is never shown.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import RunLocked

LOCK = ".lock"


@dataclass(frozen=True)
class StageCount:
    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class Owner:
    """The live process that holds a run's lock, and the stages it reports in progress."""

    pid: int | None
    stages: list[StageCount]


def acquire(path: Path) -> int:
    """Take the run's lock (or raise `RunLocked` naming its holder); write our pid in it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _lock_exclusive(fd)
    except BlockingIOError:
        pid = _parse(os.pread(fd, 4096, 0))[0]
        os.close(fd)
        raise RunLocked(
            f"{path.parent.name} is in use by process {pid or 'another process'}; wait for it to "
            "finish or stop it"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _lock_exclusive(fd: int, tries: int = 20) -> None:
    """Take the lock, waiting a moment for a reader: `owner()` holds a shared lock for an instant,
    and a run opened during that instant must not be told the run is in use."""
    for _ in range(tries - 1):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            time.sleep(0.01)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def write_live(fd: int, stages: list[StageCount]) -> None:
    """Say which stages are in progress, in the lock file the caller holds: one `pwrite` of the
    whole text, padded over what was there, so a reader sees the old line or the new one."""
    live = {s.stage: [s.done, s.total] for s in stages}
    text = f"{os.getpid()}\n{json.dumps(live)}\n".encode()
    size = os.fstat(fd).st_size
    os.pwrite(fd, text + b" " * max(0, size - len(text)), 0)


def owner(root: Path) -> Owner | None:
    """The process running the run at `root`, or None when no process holds its lock.

    Asked by trying the lock on a descriptor of our own and letting go at once (`acquire` waits
    out that instant)."""
    try:
        fd = os.open(root / LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, stages = _parse(os.pread(fd, 4096, 0))
            return Owner(pid, stages)
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _parse(blob: bytes) -> tuple[int | None, list[StageCount]]:
    lines = blob.decode(errors="replace").splitlines()
    first = lines[0].strip() if lines else ""
    pid = int(first) if first.isdigit() else None
    try:
        live = json.loads(lines[1]) if len(lines) > 1 else {}
        stages = [StageCount(k, int(v[0]), int(v[1])) for k, v in live.items()]
    except (ValueError, TypeError, IndexError, AttributeError):
        stages = []
    return pid, stages
