"""A research programme across runs: `programs/NAME/` with PROGRAM.md and LOG.md.

PROGRAM.md is what a newcomer to the programme reads: its question, the runs so far with one
line of result each, and the open questions. It is rendered from program.json (the same facts,
typed) and both are rewritten atomically, data first; LOG.md is append-only, in the run LOG's
format. Recording a run again replaces its line, so a resumed run never shows twice.

Runs of one programme end in separate processes, perhaps at the same instant: every
read-modify-write of program.json and every LOG.md append (which numbers its entry from the last
one on disk) holds an exclusive lock on the programme's `.lock`, so no run's line is lost and no
two entries share a number.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel, Field

from memory.files import utc_stamp, write_atomic
from memory.flock import exclusive
from memory.log import LogEntry, RunLog

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
LOCK = ".lock"
LOG_TITLE = "# LOG\n\nAppend-only record of this programme: one numbered entry per event.\n\n"

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


class RunLine(BaseModel):
    """One run of the programme, as PROGRAM.md lists it."""

    run_id: str
    protocol_id: str
    status: str = Field(description="The run's status when the line was written.")
    result: str = Field(description="One line of result: the decisions, or why it stopped.")
    updated: str


class Program(BaseModel):
    """program.json: the facts PROGRAM.md is rendered from."""

    name: str
    question: str
    created: str
    runs: list[RunLine] = Field(default_factory=list)
    open_questions: list[str] = Field(default_factory=list)


class ProgramDir:
    """An existing programme directory."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def append(self, stage: str, actor: str, kind: str, text: str) -> int:
        """Append an entry to LOG.md and return its number, which follows the last one on disk
        (runs in other processes append too: the lock makes reading it and writing ours one
        step)."""
        with self._locked():
            return self._log().append(stage, actor, kind, text)

    def entries(self) -> list[LogEntry]:
        return self._log().entries()

    def _log(self) -> RunLog:
        return RunLog(self.root / "LOG.md", title=LOG_TITLE)

    def _locked(self) -> AbstractContextManager[None]:
        return exclusive(self.root / LOCK)

    @property
    def name(self) -> str:
        return self.root.name

    @classmethod
    def create(cls, programs: Path, name: str, question: str) -> ProgramDir:
        """Make `programs/NAME/`; raises FileExistsError if it is there, ValueError for a bad
        name or an empty question."""
        if not NAME.match(name):
            raise ValueError(f"a programme's name is letters, digits, '_', '.', '-': {name!r}")
        if not question.strip():
            raise ValueError("a new programme needs its question")
        root = Path(programs) / name
        root.mkdir(parents=True, exist_ok=False)
        state = Program(name=name, question=question.strip(), created=utc_stamp())
        program = cls(root)
        with program._locked():
            program._write(state)
        program.append("program", "human", "created", f"Question: {state.question}")
        return program

    @classmethod
    def open(cls, programs: Path, name: str) -> ProgramDir:
        """An existing programme; FileNotFoundError when there is none of that name."""
        root = Path(programs) / name
        if not NAME.match(name) or not (root / "program.json").is_file():
            raise FileNotFoundError(f"no programme {name!r} in {programs}")
        return cls(root)

    def state(self) -> Program:
        return Program.model_validate_json((self.root / "program.json").read_text())

    def record_run(self, line: RunLine) -> bool:
        """Put the run's line in PROGRAM.md, replacing an earlier one of the same run; return
        whether anything changed (the same status and result again changes nothing)."""
        with self._locked():
            state = self.state()
            old = next((r for r in state.runs if r.run_id == line.run_id), None)
            if old is not None and (old.status, old.result) == (line.status, line.result):
                return False
            runs = [line if r.run_id == line.run_id else r for r in state.runs]
            if old is None:
                runs.append(line)
            self._write(state.model_copy(update={"runs": runs}))
            return True

    def add_open_question(self, text: str) -> None:
        with self._locked():
            state = self.state()
            if text.strip() and text.strip() not in state.open_questions:
                questions = [*state.open_questions, text.strip()]
                self._write(state.model_copy(update={"open_questions": questions}))

    def _write(self, state: Program) -> None:
        """Rewrite program.json and PROGRAM.md; the caller holds the lock."""
        write_atomic(self.root / "program.json", state.model_dump_json(indent=2) + "\n")
        text = _env.get_template("program.md.j2").render(p=state)
        write_atomic(self.root / "PROGRAM.md", text)


def list_programs(programs: Path) -> list[Program]:
    """Every readable programme under `programs`, by name."""
    out = []
    for root in sorted(Path(programs).glob("*/program.json")):
        try:
            out.append(Program.model_validate_json(root.read_text()))
        except (OSError, ValueError):
            continue
    return out
