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
from pydantic import BaseModel, Field, field_validator

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


class OpenQuestion(BaseModel):
    """A question the programme has not taken up: written down by hand, or a follow-up that
    `research next` proposed and the person did not pick."""

    title: str
    reason: str = Field("", description="Why it is worth asking, in one line.")
    run_id: str | None = Field(None, description="The run whose follow-ups proposed it.")
    followup_id: str | None = Field(None, description="The id its protocol would have.")
    left: str = Field("", description="How it was left open: 'none picked', 'X picked'.")
    picked: str | None = Field(
        None, description="When it was picked later: no longer open, kept as history."
    )

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.run_id, self.followup_id or self.title)


class Program(BaseModel):
    """program.json: the facts PROGRAM.md is rendered from."""

    name: str
    question: str
    created: str
    runs: list[RunLine] = Field(default_factory=list)
    open_questions: list[OpenQuestion] = Field(
        default_factory=list, description="Open and since picked, in the order they arose."
    )

    @field_validator("open_questions", mode="before")
    @classmethod
    def _plain_text(cls, value: object) -> object:
        """Programmes written before questions had parts hold plain text."""
        if isinstance(value, list):
            return [{"title": q} if isinstance(q, str) else q for q in value]
        return value

    @property
    def still_open(self) -> list[OpenQuestion]:
        return [q for q in self.open_questions if q.picked is None]


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
        """LOG.md's entries (none when it is missing: reading never writes its title)."""
        return self._log().entries() if (self.root / "LOG.md").exists() else []

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

    def record_run(self, line: RunLine, entry: tuple[str, str, str, str] | None = None) -> bool:
        """Put the run's line in PROGRAM.md, replacing an earlier one of the same run, and (when
        it changed) append `entry` (stage, actor, kind, text) to LOG.md under the same lock, so
        a crash between the two cannot leave a line whose entry a resume would never write;
        return whether anything changed (the same status and result again changes nothing)."""
        with self._locked():
            state = self.state()
            old = next((r for r in state.runs if r.run_id == line.run_id), None)
            if old is not None and (old.status, old.result) == (line.status, line.result):
                return False
            runs = [line if r.run_id == line.run_id else r for r in state.runs]
            if old is None:
                runs.append(line)
            if entry is not None:  # the entry first: a crash before the line writes both again
                self._log().append(*entry)
            self._write(state.model_copy(update={"runs": runs}))
            return True

    def add_open_question(self, text: str) -> None:
        if text.strip():
            self.note_questions([OpenQuestion(title=text.strip())])

    def note_questions(self, questions: list[OpenQuestion], picked: str | None = None) -> bool:
        """Add the questions not already there (by run and follow-up id, so a choice replayed
        adds nothing twice); the follow-up `picked` of those runs is kept as picked, no longer
        open, whether it was listed before or not. Return whether anything changed."""
        with self._locked():
            state = self.state()
            runs = {q.run_id for q in questions}

            def mark(q: OpenQuestion) -> OpenQuestion:
                taken = q.picked is None and q.run_id in runs and q.followup_id == picked
                return q.model_copy(update={"picked": utc_stamp()}) if picked and taken else q

            kept = [mark(q) for q in state.open_questions]
            known = {q.key for q in kept}
            new = [mark(q) for q in questions if q.key not in known]
            if not new and kept == state.open_questions:
                return False
            self._write(state.model_copy(update={"open_questions": [*kept, *new]}))
            return True

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
