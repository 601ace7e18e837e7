"""Progress that tells the truth (issue 15): counts as results are recorded, the average rate
of this session and an ETA from it; piped to a file, plain lines as they happen; `research status`
of a running run says who runs it and how far it is.
"""

from __future__ import annotations

import io
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from rich.console import Console

from orchestrator.cli.bars import Bars, Stage, clock, per
from tests.conftest import DEU, ROOT, research
from tests.fakes.world import is_analyst
from tests.limits import HANG_S

HELD_AFTER = 12
"""Subject calls the fake answers before it holds the rest until the test lets go."""


def test_rate_is_this_sessions_average_and_eta_waits_for_a_first_item() -> None:
    st = Stage("collect", total=15, done=3, base=3, t0=0.0)
    assert st.rate(60.0) is None and st.eta(60.0) is None  # nothing done by this process yet
    assert (per(st.rate(60.0)), clock(st.eta(60.0))) == ("-", "-")
    st.done = 15  # 12 calls over 2 minutes: 0.1/s, whatever an instantaneous speed said
    assert st.rate(120.0) == 12 / 120
    assert per(st.rate(120.0)) == "6.0/min"  # the 3 done before the resume are not in it
    st.done = 9  # 6 in a minute, 6 left: a minute to go
    assert clock(st.eta(60.0)) == "0:01:00"
    assert per(12 / 3) == "4.0/s"


def plain_bars(heartbeat_s: float = 10.0) -> tuple[Bars, io.StringIO]:
    out = io.StringIO()
    return Bars(Console(file=out, force_terminal=False, width=200), heartbeat_s), out


def test_without_a_terminal_lines_at_start_every_tenth_and_at_the_end() -> None:
    bars, out = plain_bars()
    with bars:
        bars.start("collect", 23, 3)
        for _ in range(20):
            bars.advance("collect")
        bars.stop("collect")
    lines = out.getvalue().splitlines()
    assert lines[0] == "collect: started, 20 of 23 to do (3 already done)"
    going = [int(m.group(1)) for line in lines if (m := re.match(r"collect: (\d+)/23 after", line))]
    assert going == [5, 7, 9, 11, 13, 15, 17, 19, 21]  # every 23 // 10 = 2 items
    assert re.fullmatch(r"collect: done, 23/23 in 0:00:0\d, [\d.]+/s average", lines[-1])
    assert "\r" not in out.getvalue() and "━" not in out.getvalue()  # nothing redrawn


def test_a_stage_that_ends_short_says_so_and_a_silent_one_still_beats() -> None:
    bars, out = plain_bars(heartbeat_s=0.05)
    with bars:
        bars.start("evaluate", 8)
        guard = time.monotonic() + HANG_S
        while out.getvalue().count("evaluate: 0/8 after") < 2:  # nothing advances: heartbeats
            assert time.monotonic() < guard
            time.sleep(0.01)
        bars.advance("evaluate", 5)
        bars.stop("evaluate")
    assert out.getvalue().splitlines()[-1].startswith("evaluate: stopped at 5/8 after")
    assert "eta -" in out.getvalue()


def read_lines(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """The child's stdout, line by line as it writes them (None at its end)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_piped_run_prints_progress_as_it_goes_and_status_shows_it_running(
    env: dict, runs: Path, world
) -> None:
    base = world.handler
    release = threading.Event()
    subject_calls: list[int] = []
    lock = threading.Lock()

    def handler(body: dict):
        if not body.get("tools") and not is_analyst(body):
            with lock:
                subject_calls.append(1)
                n = len(subject_calls)
            if n > HELD_AFTER:
                release.wait(HANG_S)
        return base(body)

    world.handler = handler
    argv = ["run", str(DEU), "--pilot", "--yes", "--run-id", "piped"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli.app", *argv],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = read_lines(proc)
        seen: list[str] = []
        while not any(re.match(r"collect: \d+/24 after", s) for s in seen):
            line = lines.get(timeout=HANG_S)
            assert line is not None, (seen, proc.stderr.read() if proc.stderr else "")
            seen.append(line)
        assert proc.poll() is None  # the lines came while the run was still running
        assert "collect: started, 24 to do" in seen

        # another process asks: who runs it, how far it is, what to do
        guard = time.monotonic() + HANG_S
        while (
            f"collect {HELD_AFTER}/24" not in (now := research("status", "piped", env=env)).stdout
        ):
            assert time.monotonic() < guard, now.stdout + now.stderr
        said = " ".join(now.stdout.split())  # as read, whatever the markdown's wrapping
        assert f"running (process {proc.pid}): collect {HELD_AFTER}/24" in said
        assert "wait for it to finish, or look at it: research view piped" in said
        assert "research resume" not in said
        listed = research("status", env=env).stdout
        assert re.search(r"piped\s.*running", listed), listed
    finally:
        release.set()
    assert proc.wait(timeout=HANG_S) == 0, proc.stderr.read() if proc.stderr else ""
    while (line := lines.get(timeout=HANG_S)) is not None:
        seen.append(line)
    out = "\n".join(seen)
    assert re.search(r"^collect: done, 24/24 in \d:\d\d:\d\d, [\d.]+/(s|min) average$", out, re.M)
    assert re.search(r"^evaluate: started, 24 to do$", out, re.M)
    assert re.search(r"^evaluate: done, 24/24 in ", out, re.M)
    assert "complete" in out and "\r" not in out
    # once the process is gone, nobody holds the run: status no longer says running
    after = research("status", "piped", env=env).stdout
    assert "running (process" not in after and "complete" in after
