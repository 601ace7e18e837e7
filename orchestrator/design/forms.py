"""How a stage is asked for: the tool's schema, what its input becomes, what the brief shows.

The full form (the default with an API model) asks for the protocol's own sections under the
protocol schema, and shows the `--from` example whole. The compact form (orchestrator/design/
compact.py, the default offline) asks a small model for content only and writes the structure
itself. Both end in the same thing: the stage's protocol sections, checked by the loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from orchestrator.design.compact import CompactForm
from orchestrator.design.draft import Draft, dump
from orchestrator.design.stages import BATCH, DesignStage, batch_schema, stage_schema
from orchestrator.errors import ProtocolError


class Form(Protocol):
    name: str

    def schema(self, stage: DesignStage, so_far: Draft, batch: int = 0) -> dict[str, Any]: ...

    def sections(
        self, stage: DesignStage, so_far: Draft, drafted: Draft, batch: int = 0
    ) -> Draft: ...

    def shown(self, so_far: Draft, example: str, rejected: str) -> tuple[str, str, str]:
        """What the brief shows: the protocol so far, the example, a rejected draft."""
        ...

    def check(
        self, stage: DesignStage, so_far: Draft, sections: Draft, path: Path
    ) -> list[ProtocolError]:
        """Problems of a hand edit of the stage that only the form can see now: what it will
        write at a later stage from these sections, and the loader would refuse then."""
        ...


@dataclass(frozen=True)
class FullForm:
    """The protocol's sections as the tool input, field for field."""

    name: str = "full"

    def schema(self, stage: DesignStage, so_far: Draft, batch: int = 0) -> dict[str, Any]:
        return batch_schema() if batch else stage_schema(stage.name)

    def sections(self, stage: DesignStage, so_far: Draft, drafted: Draft, batch: int = 0) -> Draft:
        return {k: drafted.get(k) or [] for k in BATCH} if batch else drafted

    def shown(self, so_far: Draft, example: str, rejected: str) -> tuple[str, str, str]:
        return (dump(so_far) if so_far else ""), example, rejected

    def check(
        self, stage: DesignStage, so_far: Draft, sections: Draft, path: Path
    ) -> list[ProtocolError]:
        return []  # the designer drafts every later stage's sections, checked as they come


def form_named(name: str, example_text: str = "") -> Form:
    if name == "full":
        return FullForm()
    if name == "compact":
        return CompactForm.of(example_text)
    raise ValueError(f"unknown design form {name!r}: write full or compact")
