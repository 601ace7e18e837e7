"""SUMMARY.md: the state of a run as a newcomer needs it, rewritten atomically after each stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from memory.files import write_atomic

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class StageProgress:
    stage: str
    status: str
    counts: str = ""


@dataclass(frozen=True)
class DecisionEntry:
    """A checkpoint decision as SUMMARY.md lists it."""

    checkpoint: str
    decision: str
    by: str
    at: str
    note: str = ""


@dataclass(frozen=True)
class Flag:
    stage: str
    kind: str
    text: str
    items: int = 0


@dataclass(frozen=True)
class Summary:
    run_id: str
    protocol_id: str
    protocol_title: str
    protocol_sha256: str
    status: str
    size: str
    stages: list[StageProgress]
    decisions: list[DecisionEntry]
    flags: list[Flag]
    numbers: dict[str, str]
    next_step: str
    last_log_entry: int
    models: list[str] = field(default_factory=list)
    program: str = ""
    """The programme the run joined and where its PROGRAM.md is, or empty."""


def write_summary(path: Path, summary: Summary) -> None:
    write_atomic(Path(path), _env.get_template("summary.md.j2").render(s=summary))
