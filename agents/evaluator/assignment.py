"""One evaluator's work as its tools see it: the blinded items by ref, what has been done with
them, and the sink every decision goes to as it is made. Rebuilt from the sink's records when a
run restarts."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from agents.evaluator.brief import AgentVerdict, Brief, Sink, WorkItem
from agents.evaluator.schema import verdict_model
from agents.prompts import say
from agents.tools import ToolInputError


@dataclass
class Assignment:
    name: str
    brief: Brief
    sink: Sink
    refs: dict[str, WorkItem]
    """The items under opaque refs (R01, R02, ...), in a shuffled order."""
    max_attempts: int = 3
    schema: type[BaseModel] = field(init=False)
    read: bool = False
    passed: bool = False
    check_attempts: int = 0
    served: list[str] = field(default_factory=list)
    done: dict[str, AgentVerdict] = field(default_factory=dict)
    tries: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.schema = verdict_model(self.brief.fields)

    @classmethod
    def shuffled(
        cls,
        name: str,
        brief: Brief,
        sink: Sink,
        work: list[WorkItem],
        *,
        seed: int,
        max_attempts: int,
        already: dict[tuple[str, int], AgentVerdict] | None = None,
        passed: bool = False,
    ) -> Assignment:
        """The work in an order seeded per evaluator; `already` holds verdicts recorded before
        a restart, `passed` says the comprehension check was passed then."""
        order = list(work)
        random.Random(f"{seed}:{name}").shuffle(order)
        refs = {f"R{n + 1:02d}": w for n, w in enumerate(order)}
        out = cls(name, brief, sink, refs, max_attempts, passed=passed or not brief.questions)
        for ref, w in refs.items():
            if already and (w.item_id, w.copy) in already:
                out.done[ref] = already[(w.item_id, w.copy)]
        return out

    @property
    def remaining(self) -> list[str]:
        return [r for r in self.refs if r not in self.done]

    @property
    def owed(self) -> list[str]:
        """Refs served by get_batch and not yet judged."""
        return [r for r in self.served if r not in self.done]

    def gate(self, *, check: bool = True) -> None:
        """Refuse a tool until the protocol was read (and, with `check`, the check passed)."""
        if not self.read:
            raise ToolInputError(say("tools/read_protocol.j2", "read_first"))
        if check and not self.passed:
            raise ToolInputError(say("tools/read_protocol.j2", "check_first"))

    def fail(self, ref: str, message: str) -> None:
        """One more failed try at `ref`; after `max_attempts` it is recorded unscored."""
        self.tries[ref] = self.tries.get(ref, 0) + 1
        if self.tries[ref] >= self.max_attempts:
            self.finish(ref, None, f"unscored after {self.max_attempts} attempts: {message}")

    def finish(
        self,
        ref: str,
        fields: dict[str, Any] | None,
        reason: str | None,
        cites: tuple[int, ...] = (),
    ) -> None:
        w = self.refs[ref]
        verdict = AgentVerdict(w.item_id, w.copy, w.role, fields, reason, cites)
        self.done[ref] = verdict
        self.sink.verdicts(self.name, [verdict])
