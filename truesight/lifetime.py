"""A worker started for one run (`--parent-pid PID`) ends when that run's process is gone.

A run that starts its own worker stops it on the way out, but a SIGKILL of the run (or a crash
of the interpreter) skips every `finally`: without this the worker would live on, holding its
port and gigabytes of memory, and the next run would quietly reuse it. Two guards, both here:

- on Linux, `prctl(PR_SET_PDEATHSIG, SIGTERM)`: the kernel sends SIGTERM the moment the parent
  dies (set in the worker itself, so the run needs no `preexec_fn`, unsafe beside threads);
- everywhere, a watchdog thread that looks every `interval_s` whether the parent is still there
  and, once it is gone, asks the server to stop (SIGTERM to itself) and exits hard if the stop
  takes longer than `grace_s` (a generate still running in the model thread).

A worker started with `research worker` gets no `--parent-pid`: it is shared and outlives runs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
"""From <linux/prctl.h>."""


def process_running(pid: int) -> bool:
    """Whether `pid` is a live process. A zombie (dead, not yet reaped) counts as gone: a run
    killed by SIGKILL stays a zombie until whoever started it waits for it."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            # the state follows the command name in parentheses, which may itself hold spaces
            state = stat.read_text().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return False
        return state not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, alive
        return True
    return True


def parent_gone(parent_pid: int, direct: bool) -> bool:
    """Whether the process the worker serves has ended. A direct child is reparented the moment
    its parent dies, which no reuse of the pid can fake; otherwise ask whether the pid lives."""
    if direct and os.getppid() != parent_pid:
        return True
    return not process_running(parent_pid)


def _set_pdeathsig() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # the watchdog still covers it
        log.warning("prctl(PR_SET_PDEATHSIG) is unavailable; relying on the watchdog")


def _stop(reason: str, grace_s: float) -> None:
    print(f"research worker: {reason}; stopping", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)  # the server's own graceful stop
    time.sleep(grace_s)  # still here: the stop is stuck behind a running forward pass
    os._exit(0)


def watch_parent(parent_pid: int, *, interval_s: float = 0.5, grace_s: float = 10.0) -> None:
    """End this process when `parent_pid` ends; returns at once (the watch runs in a thread).

    Exits at once when the parent is already gone: a worker whose run died while it started
    has nobody to serve.
    """
    direct = os.getppid() == parent_pid
    if direct:
        _set_pdeathsig()
    if parent_gone(parent_pid, direct):  # died before the death signal was armed
        print(f"research worker: parent {parent_pid} is gone", file=sys.stderr, flush=True)
        os._exit(0)

    def watch() -> None:
        while not parent_gone(parent_pid, direct):
            time.sleep(interval_s)
        _stop(f"the run that started it (pid {parent_pid}) has ended", grace_s)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
