"""LOG.md: the append-only record of a run.

Each entry is one `os.write` of a whole entry to a file opened with O_APPEND, then fsync: a crash
leaves whole entries only. Entries are numbered; SUMMARY.md names the last one it reflects.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from memory.files import utc_stamp

HEADER = re.compile(r"^## (\d+) · (\S+) · (\S+) · (\S+) · (\S+)$", re.MULTILINE)
TITLE = "# LOG\n\nAppend-only record of this run: one numbered entry per event.\n\n"


@dataclass(frozen=True)
class LogEntry:
    number: int
    time: str
    stage: str
    actor: str
    kind: str
    text: str

    def render(self) -> str:
        head = f"## {self.number} · {self.time} · {self.stage} · {self.actor} · {self.kind}"
        return f"{head}\n\n{self.text.strip()}\n\n"


class RunLog:
    """Append to and read a run's LOG.md. Safe to share between threads of one process."""

    def __init__(self, path: Path, title: str = TITLE):
        self.path = Path(path)
        self._lock = threading.Lock()
        if not self.path.exists():
            self._write(title)
        entries = self.entries()
        self._last = entries[-1].number if entries else 0

    @property
    def last_number(self) -> int:
        return self._last

    def append(self, stage: str, actor: str, kind: str, text: str) -> int:
        """Append one entry and return its number once it is on disk."""
        for value in (stage, actor, kind):
            if not value or any(c.isspace() for c in value):
                raise ValueError(f"log stage/actor/kind must be one word, got {value!r}")
        with self._lock:
            time = utc_stamp()
            entry = LogEntry(self._last + 1, time, stage, actor, kind, text)
            self._write(entry.render())
            self._last = entry.number
            return entry.number

    def _write(self, text: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def entries(self) -> list[LogEntry]:
        text = self.path.read_text(encoding="utf-8")
        heads = list(HEADER.finditer(text))
        out = []
        for i, m in enumerate(heads):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
            number, time, stage, actor, kind = m.groups()
            body = text[m.end() : end].strip()
            out.append(LogEntry(int(number), time, stage, actor, kind, body))
        return out

    def tail(self, n: int) -> list[LogEntry]:
        return self.entries()[-n:] if n > 0 else []
