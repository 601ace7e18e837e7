"""The typed rows records.sqlite hands out, and the statuses its rows may hold.

Rows are built from named columns (never by position), so a column added to a table cannot shift
what a field means. Statuses are `StrEnum`s: they compare equal to, and are stored as, the plain
strings earlier versions wrote.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

__all__ = [
    "AmendmentRow",
    "AmendmentStatus",
    "Assigned",
    "BatchRow",
    "BatchStatus",
    "ComprehensionRow",
    "DecisionRow",
    "FlagRow",
    "Item",
    "Label",
    "PossiblyPaid",
    "ProbeRow",
    "ProbeSource",
    "Response",
    "SessionReason",
    "SessionRow",
    "StageRow",
    "Turn",
    "StageStatus",
    "Verdict",
    "VerdictRole",
    "VerdictStatus",
    "reply_text",
]


class VerdictStatus(StrEnum):
    SCORED = "scored"
    UNSCORED = "unscored"
    """No usable verdict; `reason` says why (never dropped, never counted as a negative)."""
    PENDING = "pending"
    """Not judged yet: the judge API kept failing (`reason` says how). The item waits for the
    next pass or `research resume`; an outage is never a verdict."""


class ProbeSource(StrEnum):
    STAGE = "stage"
    """The probe stage: every probeable item, read as the protocol says (the figures)."""
    AGENT = "agent"
    """An evaluator's `truesight` tool: a response it asked about, read alone."""


class VerdictRole(StrEnum):
    PRIMARY = "primary"
    """The verdict the analysis uses."""
    OVERLAP = "overlap"
    """A second evaluator's verdict on the item, for agreement."""
    DUPLICATE = "duplicate"
    """The same evaluator's second look, for self-consistency."""


class BatchStatus(StrEnum):
    PLANNED = "planned"
    PENDING = "pending"
    """Its evaluator stopped on a judge API that kept failing: some items wait (see verdicts)."""
    DONE = "done"


class StageStatus(StrEnum):
    PENDING = "pending"
    """Not started: the stage has no row yet (SUMMARY shows it so)."""
    DONE = "done"


class AmendmentStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class SessionReason(StrEnum):
    """Why an agent opened a new conversation."""

    START = "start"
    RESTART = "restart"
    """Its earlier conversation on the same batch was cut off (a killed or failed run)."""
    COMPACTION = "compaction"
    """Its context filled up; it continues from the notes it wrote."""


class Turn(NamedTuple):
    """One turn of an item's conversation after the system prompt: `user`, `assistant`,
    `tool_use` (a fixed assistant turn calling a tool) or `tool_result` (that call's result)."""

    role: str
    text: str | None
    """None for a turn the subject generates (its reply is in the ledger, role
    `subject:turn-<k>` for the k-th such turn); for `tool_use`, what the assistant says before
    the call ("" for nothing)."""
    tool: str | None = None
    """The tool called (`tool_use`) or answering (`tool_result`)."""
    input: dict[str, Any] | None = None
    """A `tool_use` turn's input to the tool."""


@dataclass(frozen=True)
class Item:
    id: str
    cell: str
    subject: str
    levels: dict[str, str]
    replicate: int
    task_id: str
    plant_id: str | None
    system: str
    user: str
    blind_user: str
    turns: tuple[Turn, ...] = ()
    """The conversation after the system prompt, for a template written as a list of turns;
    empty for the two-key form (the conversation is `user` alone)."""
    blind_turns: tuple[Turn, ...] = ()
    """The conversation as evaluators see it (rendered without blinded levels)."""

    def generated(self) -> int:
        """How many turns the subject writes before its judged reply."""
        return sum(1 for t in self.turns if t.text is None)


def reply_text(content: list[dict[str, Any]]) -> str:
    """A reply as text: its text blocks, then each tool it called as `[tool call:
    name({...})]` — how judges, SUMMARY and the report read a reply that called a tool."""
    parts = ["".join(b.get("text", "") for b in content if b.get("type") == "text")]
    for b in content:
        if b.get("type") == "tool_use":
            args = json.dumps(b.get("input") or {}, ensure_ascii=False)
            parts.append(f"[tool call: {b.get('name')}({args})]")
    return "\n\n".join(p for p in parts if p)


@dataclass(frozen=True)
class Response:
    item_id: str
    text: str
    stop_reason: str | None
    error: str | None
    output_tokens: int


@dataclass(frozen=True)
class PossiblyPaid:
    """One stage's calls that a process which has since died started and never recorded: each
    was sent, or about to be, and may have been paid. Tokens and cost are estimates."""

    stage: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    unpriced: int
    """Calls of a model without a known price (not counted in `cost_usd`)."""

    @classmethod
    def total(cls, stages: Iterable[PossiblyPaid]) -> PossiblyPaid:
        """Every stage's together (stage "all"); zeros when there are none."""
        rows = list(stages)
        return cls(
            "all",
            sum(p.calls for p in rows),
            sum(p.input_tokens for p in rows),
            sum(p.output_tokens for p in rows),
            sum(p.cost_usd for p in rows),
            sum(p.unpriced for p in rows),
        )


@dataclass(frozen=True)
class Verdict:
    item_id: str
    evaluator: str
    batch_id: str
    status: VerdictStatus
    fields: dict[str, Any] | None
    reason: str | None
    copy: int = 0
    """1 for the planted duplicate an evaluator judges a second time (self-consistency)."""
    role: VerdictRole = VerdictRole.PRIMARY
    cites: tuple[int, ...] = ()
    """probe_results ids the verdict relied on."""

    def __post_init__(self) -> None:
        # a mistyped status or role fails here, not later as a silently uncounted verdict
        object.__setattr__(self, "status", VerdictStatus(self.status))
        object.__setattr__(self, "role", VerdictRole(self.role))


@dataclass(frozen=True)
class Label:
    """A researcher's verdict on one field of one item (`research label`), or that they skipped
    it. One per (item, field): a later label replaces an earlier one."""

    item_id: str
    field: str
    value: Any
    """Typed as the protocol's verdict field (bool, enum value, ordinal level, number, text);
    None when skipped."""
    by: str
    """Who labelled it."""
    source: str
    """`terminal`, or `file:<name>` for labels read with `research label --from`."""
    skipped: bool = False
    created: str = ""


@dataclass(frozen=True)
class Assigned:
    """One entry of an evaluator's work: an item, which copy, and why it is there."""

    item_id: str
    copy: int = 0
    role: VerdictRole = VerdictRole.PRIMARY

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", VerdictRole(self.role))


@dataclass(frozen=True)
class BatchRow:
    """A planned evaluator batch: its id, who judges it, its primary items, how far it got."""

    id: str
    evaluator: str
    items: list[str]
    status: BatchStatus


@dataclass(frozen=True)
class SessionRow:
    """One conversation of an agent: its number (1, 2, ...) and why it was opened."""

    n: int
    reason: str

    @property
    def continued(self) -> bool:
        """Whether it took up earlier work (a restart or compaction), not a fresh batch."""
        return self.reason != SessionReason.START


@dataclass(frozen=True)
class StageRow:
    status: StageStatus
    counts: dict[str, int | float]


@dataclass(frozen=True)
class ComprehensionRow:
    evaluator: str
    attempt: int
    answers: dict[str, str]
    wrong: list[str]
    passed: bool


@dataclass(frozen=True)
class ProbeRow:
    id: int
    item_id: str | None
    probe: str
    model: str
    result: dict[str, Any] | None
    error: str | None
    source: str = "stage"
    """`ProbeSource`: the probe stage's readout (with the prompt as context where the protocol
    says) or one an evaluator asked for through its tool (the response alone)."""


@dataclass(frozen=True)
class FlagRow:
    id: int
    stage: str
    kind: str
    raised_by: str
    items: list[str]
    text: str
    resolution: str | None


@dataclass(frozen=True)
class DecisionRow:
    """A checkpoint's (or an amendment's) recorded decision: approve or reject."""

    checkpoint: str
    decision: str
    by: str
    at: str
    note: str


@dataclass(frozen=True)
class AmendmentRow:
    """A proposed change to the pre-registered analysis, and what a human decided."""

    n: int
    proposed_at: str
    by: str
    note: str
    old_sha256: str
    new_sha256: str
    diff: str
    text: str
    """The amended protocol.yaml, as proposed."""
    status: AmendmentStatus
    decided_by: str | None
    decided_at: str | None
    decision_note: str
