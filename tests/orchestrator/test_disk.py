"""A run directory that cannot be written: one line, exit 2, `failed` on record, resumable later.

CI runs as root, for whom permission bits change nothing, so the conditions are made in ways that
hold for root too: a file-size limit set in the child (RLIMIT_FSIZE, with SIGXFSZ ignored so that
a write past it fails with EFBIG instead of killing the process), sysfs, which refuses to make a
directory to anyone, and, where mounting is permitted, a small or read-only tmpfs.
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from memory import RunLog
from orchestrator import runner
from orchestrator.unwritable import unwritable
from tests.conftest import DEU, copy_run, research

REFUSED = ("Operation not permitted", "Permission denied", "Read-only file system")


def limited(*args: str, env: dict[str, str], file_size: int) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess whose writes may not make a file larger than `file_size` bytes."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    return research(*args, env=env, preexec_fn=limit)


def one_line_error(r: subprocess.CompletedProcess[str], path: Path) -> str:
    """The reason in `error: cannot write PATH: REASON`, which must end stderr, with exit code 2
    and no traceback anywhere."""
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    found = re.fullmatch(rf"error: cannot write {re.escape(str(path))}: (.+)", last)
    assert found, last
    return found.group(1)


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


@pytest.fixture
def paused(env: dict[str, str], runs: Path) -> Path:
    """A pilot run stopped at its first checkpoint, before any call is made."""
    assert runner.start(DEU, pilot=True, run_id="disk").status == "awaiting_approval"
    return runs / "disk"


def test_runs_dir_that_cannot_be_made(env: dict[str, str], tmp_path: Path) -> None:
    runs = Path("/sys/research-runs")  # sysfs makes no directories, not even for root
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no sysfs at /sys")
    r = research("run", str(DEU), "--pilot", "--yes", env={**env, "RESEARCH_RUNS_DIR": str(runs)})
    assert one_line_error(r, runs) in REFUSED


def test_run_dir_that_cannot_be_filled_leaves_nothing(env: dict[str, str], runs: Path) -> None:
    r = limited("run", str(DEU), "--pilot", "--yes", "--run-id", "big", env=env, file_size=0)
    assert one_line_error(r, runs) == "File too large"
    assert list(runs.iterdir()) == []  # not even the half-built temporary directory


@pytest.mark.parametrize(
    "command",
    [["resume", "disk", "--yes"], ["approve", "disk"], ["amend", "disk", str(DEU), "--note", "x"]],
    ids=lambda c: c[0],
)
def test_commands_on_a_run_that_cannot_be_written(
    env: dict[str, str], paused: Path, command: list[str]
) -> None:
    """Nothing at all can be written, not even the manifest: the one line still comes out."""
    before = manifest(paused)
    r = limited(*command, env=env, file_size=0)
    assert one_line_error(r, paused) == "File too large"
    assert manifest(paused) == before  # nothing ran: the run still waits where it did


def test_file_size_limit_mid_run_is_recorded_then_resume_completes(
    env: dict[str, str], paused: Path
) -> None:
    # no file may grow past the largest one there is: the first stage that writes much fails
    largest = max(p.stat().st_size for p in paused.iterdir() if p.is_file())
    r = limited("resume", "disk", "--yes", env=env, file_size=largest)
    assert one_line_error(r, paused) == "File too large"
    m = manifest(paused)
    assert m["status"] == "failed"
    assert m["reason"] == f"cannot write {paused}: File too large"
    assert "Stopped: cannot write" in (paused / "SUMMARY.md").read_text()
    last = RunLog(paused / "LOG.md").entries()[-1]
    assert last.kind == "error" and "File too large" in last.text

    again = research("resume", "disk", "--yes", env=env)
    assert again.returncode == 0 and "complete" in again.stdout, again.stderr
    assert manifest(paused)["status"] == "complete" and manifest(paused)["reason"] is None


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs, where this process may mount one (root with CAP_SYS_ADMIN)."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def remount(mount: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(mount)], check=True)


def test_read_only_then_full_disk_then_resume_completes(
    env: dict[str, str], paused: Path, tmpfs: Path
) -> None:
    run_dir = copy_run(paused, tmpfs)
    env = {**env, "RESEARCH_RUNS_DIR": str(tmpfs)}

    remount(tmpfs, "ro")
    for command in (["resume", "disk", "--yes"], ["approve", "disk"]):
        r = research(*command, env=env)
        assert one_line_error(r, run_dir) == "Read-only file system"
    assert manifest(run_dir)["status"] == "awaiting_approval"

    # room for what there is and a little more: the subject calls fill it
    disk = os.statvfs(tmpfs)
    used = (disk.f_blocks - disk.f_bfree) * disk.f_frsize
    remount(tmpfs, f"rw,size={used + 256 * 1024}")
    r = research("resume", "disk", "--yes", env=env)
    assert one_line_error(r, run_dir) == "No space left on device"
    # the full disk may leave no room even for the manifest's temporary copy: then it is left
    # as it was (never half-written), and the one line above still came out
    m = manifest(run_dir)
    assert (
        m["status"] == "running"
        or m["reason"] == f"cannot write {run_dir}: No space left on device"
    )

    remount(tmpfs, "size=64m")
    again = research("resume", "disk", "--yes", env=env)
    assert again.returncode == 0 and "complete" in again.stdout, again.stderr
    assert manifest(run_dir)["status"] == "complete"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "Disk quota exceeded"),
        (PermissionError(errno.EACCES, "Permission denied", "RUN/.lock"), "Permission denied"),
        (OSError(errno.EROFS, "Read-only file system", "RUN/.."), "Read-only file system"),
        (sqlite3.OperationalError("database or disk is full"), "No space left on device"),
        # not about writing the run directory: left alone, so that a bug keeps its traceback
        (PermissionError(errno.EACCES, "Permission denied"), None),  # a socket, a signal
        (PermissionError(errno.EACCES, "Permission denied", "/elsewhere/x"), None),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "RUN/x"), None),
        (sqlite3.OperationalError("no such table: items"), None),
        (ValueError("bad value"), None),
    ],
)
def test_which_errors_mean_unwritable(
    tmp_path: Path, error: BaseException, reason: str | None
) -> None:
    if isinstance(error, OSError) and isinstance(error.filename, str):
        error.filename = error.filename.replace("RUN", str(tmp_path))
    found = unwritable(tmp_path, error)
    assert (found and found.reason) == reason
    if found is not None:
        assert str(found) == f"cannot write {tmp_path}: {reason}"


def test_an_error_raised_from_a_full_disk_is_one_too(tmp_path: Path) -> None:
    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.Error as e:
            raise RuntimeError("while saving a checkpoint") from e
    except RuntimeError as e:
        found = unwritable(tmp_path, e)
    assert found is not None and found.reason == "No space left on device"
