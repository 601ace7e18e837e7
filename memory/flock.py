"""An exclusive `flock` held for a block: what keeps one process's read-modify-write of a shared
file from interleaving with another's.

A blocking lock on a file of its own (never the file being rewritten: a rename would swap the
inode out from under the lock). It is taken on a fresh descriptor each time, so threads of one
process exclude each other as processes do; the block must not take it again (that would wait on
itself). The kernel lets go when the process dies, so a killed holder leaves nothing to clean.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the `with` block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the only descriptor of the open file releases its lock
