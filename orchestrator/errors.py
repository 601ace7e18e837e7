"""Errors by audience.

`UserError` is the researcher's mistake (a bad flag, a missing key, a run in use): the CLI prints
its message and exits 2 without a traceback. `ProtocolError` is a `UserError` that points at a place
in a protocol file. Everything else is a bug or an outage and propagates with its traceback.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A mistake the researcher can fix; shown as one message, exit code 2."""

    exit_code = 2


class ProtocolError(UserError):
    """A protocol that cannot be loaded, with the file, line and field it concerns."""

    def __init__(
        self, message: str, *, file: str | Path, line: int | None = None, field: str | None = None
    ):
        self.file = str(file)
        self.line = line
        self.field = field
        self.message = message
        self.others: list[ProtocolError] = []
        """Further errors found in the same pass, shown after this one."""
        super().__init__(str(self))

    def report(self) -> str:
        """This error and the others, one per line."""
        return "\n".join(str(e) for e in [self, *self.others])

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class RunLocked(UserError):
    """Another process holds the run directory's lock."""


class ApiUnavailable(UserError):
    """A model API kept failing after every retry: not the researcher's mistake, but said the
    same way (one message, no traceback), with how to continue. Exit code 4 (3 is a run waiting
    at a checkpoint)."""

    exit_code = 4


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C while a run was driven, after it was recorded: carries the run's id, so that what
    is printed can name the command that continues it."""

    def __init__(self, run_id: str):
        super().__init__(run_id)
        self.run_id = run_id


class RunDirUnwritable(UserError):
    """A run directory, or the runs directory a run is being created in, that cannot be written:
    no permission, a read-only file system, no space left, a file-size limit. The reason is the
    operating system's own words ("No space left on device")."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot write {self.path}: {reason}")
