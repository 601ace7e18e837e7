"""Which errors mean that a run directory cannot be written, and why, in the OS's own words.

A disk that fills up, a file-size limit, a read-only mount or a permission taken away shows up as
an `OSError` from a write, or as a `sqlite3` error from a commit that names neither the file nor
the errno ("disk I/O error" is all SQLite says when a write hits a file-size limit). `unwritable`
turns either into a `RunDirUnwritable` naming the directory; anything else is left as it is, so a
bug keeps its traceback.
"""

from __future__ import annotations

import errno
import os
import resource
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import git

from orchestrator.errors import RunDirUnwritable

STORAGE = (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
"""Errors only storage gives: the researcher fixes them on the machine, not in the code."""
PERMISSION = (errno.EACCES, errno.EPERM)
"""Errors a socket or a signal can give too: about the run directory only when they name a file
in it (a write to a file already open is never refused for permission)."""
ERRNOS = STORAGE + PERMISSION

_SQLITE_FULL = ("SQLITE_FULL", "database or disk is full")
_SQLITE_UNWRITABLE = (
    ("SQLITE_READONLY", "attempt to write a readonly database"),
    ("SQLITE_IOERR", "disk I/O error"),
)
_PROBE_BYTES = 64 * 1024
"""What a test write puts in the directory to ask the OS why SQLite could not write there."""


def unwritable(path: Path, e: BaseException) -> RunDirUnwritable | None:
    """`e` (or an error it was raised from) as a `RunDirUnwritable` naming `path`, or None when
    it is not about writing there."""
    for cause in _chain(e):
        if isinstance(cause, RunDirUnwritable):
            return cause
        reason = _reason(cause, Path(path))
        if reason is not None:
            return RunDirUnwritable(path, reason)
    return None


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Raise an error that says `path` cannot be written as `RunDirUnwritable`; others as they
    are."""
    try:
        yield
    except Exception as e:
        err = unwritable(path, e)
        if err is None or err is e:
            raise
        raise err from e


def _chain(e: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException] = [e]
    while todo:
        cause = todo.pop(0)
        if id(cause) in seen:
            continue
        seen.add(id(cause))
        yield cause
        todo.extend(c for c in (cause.__cause__, cause.__context__) if c is not None)


def _reason(e: BaseException, path: Path) -> str | None:
    if isinstance(e, OSError):
        named = [n for n in (e.filename, e.filename2) if isinstance(n, str | bytes | os.PathLike)]
        if e.errno in STORAGE and (not named or _concerns(named, path)):
            return os.strerror(e.errno)
        if e.errno in PERMISSION and named and _concerns(named, path):
            return os.strerror(e.errno)
        return None
    if isinstance(e, sqlite3.Error):
        name, message = getattr(e, "sqlite_errorname", None) or "", str(e)
        if name == _SQLITE_FULL[0] or message == _SQLITE_FULL[1]:
            return os.strerror(errno.ENOSPC)
        for prefix, text in _SQLITE_UNWRITABLE:
            if name.startswith(prefix) or message == text:
                return _diagnose(path) or message
        if name.startswith("SQLITE_CANTOPEN"):
            return _diagnose(path)
        return None
    if isinstance(e, git.GitCommandError):  # git's own messages quote strerror
        said = f"{e.stderr}"
        return next((os.strerror(n) for n in ERRNOS if os.strerror(n) in said), None) or (
            _diagnose(path)
        )
    return None


def _concerns(names: list[str | bytes | os.PathLike], path: Path) -> bool:
    """Whether an error naming these files is about `path`, a file in it or a directory above
    it."""
    here = _resolved(path)
    for name in names:
        there = _resolved(Path(os.fsdecode(name)))
        if there == here or here in there.parents or there in here.parents:
            return True
    return False


def _resolved(path: Path) -> Path:
    return Path(os.path.abspath(path))


def _diagnose(path: Path) -> str | None:
    """Why the OS would refuse a write in `path`: a file-size limit that one of its databases
    has reached, else the error a small test write gets; None if the test write succeeds."""
    limit, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if limit != resource.RLIM_INFINITY:
        try:
            sizes = [p.stat().st_size for p in Path(path).glob("*.sqlite*")]
        except OSError:
            sizes = []
        if any(size + _PROBE_BYTES > limit for size in sizes):
            return os.strerror(errno.EFBIG)
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe.", suffix=".tmp") as f:
            f.write(b"\0" * _PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        return os.strerror(e.errno) if e.errno in ERRNOS else None
    return None
