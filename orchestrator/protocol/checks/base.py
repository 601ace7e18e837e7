"""What every check shares: the protocol, where its fields are, and how to point at one."""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import ProtocolError
from orchestrator.protocol.schema import Protocol
from orchestrator.protocol.yamlmap import Path_, dotted, line_of


class Checker:
    """A validated protocol with its file and line map; `fail` builds the error to raise."""

    def __init__(self, protocol: Protocol, path: Path, lines: dict[Path_, int]):
        self.p, self.path, self.lines = protocol, path, lines
        self.levels = {name: f.levels for name, f in protocol.design.factors.items()}

    def fail(self, where: Path_, message: str, line: int | None = None) -> ProtocolError:
        line = line if line is not None else line_of(self.lines, where)
        return ProtocolError(message, file=self.path, line=line, field=dotted(where))

    def level(self, where: Path_, factor: str, level: str) -> None:
        """`level` is one of `factor`'s levels, and `factor` is a factor of the design."""
        if factor not in self.levels:
            raise self.fail(where, f"unknown factor {factor!r} (factors: {', '.join(self.levels)})")
        if level not in self.levels[factor]:
            known = ", ".join(self.levels[factor])
            raise self.fail(
                where, f"unknown level {level!r} of factor {factor!r} (levels: {known})"
            )
