"""What an evaluator is given and what it hands back: the brief (the protocol as the judge may
see it), its work items, its verdicts, and the `Sink` its decisions go to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from agents.evaluator.schema import FieldSpec
from agents.prompts import render


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    choices: tuple[str, ...]
    answer: str
    explanation: str = ""


@dataclass(frozen=True)
class Brief:
    """What an evaluator may know about the experiment: nothing that names a condition, and
    (unless the protocol opts in with `evaluation.show_question`) no title or research question,
    so judges do not know what the experiment hopes to find. Hypotheses are never shown."""

    title: str | None
    question: str | None
    rubric: str
    fields: list[FieldSpec]
    questions: list[Question] = field(default_factory=list)
    pass_mark: float = 1.0
    chunk_size: int = 10
    truesight: bool = False
    task_fields: tuple[str, ...] = ()
    """Task fields (`evaluation.show_task_fields`) shown with every item, e.g. the expected
    answer; the same for every cell, so they tell the judge nothing of the condition."""

    def system_prompt(self) -> str:
        return render("evaluator_system.j2", brief=self)


TaskField = str | int | float | bool | None
"""A shown task field's value; None where the item's task does not have the field."""


@dataclass(frozen=True)
class WorkItem:
    """One entry of the assignment; `prompt` is the blinded input the subject saw, and
    `task_fields` the brief's `task_fields` of the item's task (None where it has none)."""

    item_id: str
    copy: int
    role: str
    prompt: str
    response: str
    task_fields: dict[str, TaskField] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class AgentVerdict:
    item_id: str
    copy: int
    role: str
    fields: dict[str, Any] | None
    reason: str | None = None
    cites: tuple[int, ...] = ()


class Sink(Protocol):
    """Where an evaluator's decisions go as they happen; the orchestrator implements it."""

    def verdicts(self, evaluator: str, verdicts: list[AgentVerdict]) -> None: ...

    def flag(self, evaluator: str, kind: str, item_ids: list[str], text: str) -> bool: ...

    def comprehension(
        self, evaluator: str, answers: dict[str, str], wrong: list[str], passed: bool
    ) -> int: ...

    def session(self, evaluator: str, reason: str) -> int: ...

    def unknown_probe_ids(self, ids: list[int]) -> list[int]: ...

    def notes(self, evaluator: str) -> str: ...

    def write_notes(self, evaluator: str, text: str) -> None: ...

    def log(self, evaluator: str, kind: str, text: str) -> None: ...


class Replaced(Exception):
    """The evaluator failed its comprehension check twice: a fresh one takes over its work."""
