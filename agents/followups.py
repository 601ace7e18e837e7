"""The follow-up proposer: reads a finished run (SUMMARY.md, the analysis as text, the report)
and proposes 1–3 next experiments in one forced `propose_followups` tool call.

Each follow-up is a YAML mapping of protocol sections to merge into the run's protocol, with a
new `id`. The caller checks each (`check`: merge it and load it with the real protocol loader)
and every error goes back to the model as a tool error naming the follow-up, the line and the
field, at most `max_attempts` calls in all; after that the result carries the last error (a bad
model output never raises).

Every call goes through the call ledger under (stage `next`, item `followups`, role `proposer`)
with the attempt number and a digest of the brief as extra key parts, so asking again about the
same run pays nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from agents.client import CallResult, CallSpec, LLMClient
from agents.forced import Forced
from agents.loop import Chat, Retry
from agents.prompts import render, say
from agents.tools import Tool, ToolInputError, explain

PROPOSE_FOLLOWUPS = "propose_followups"
ID = r"^[a-z][a-z0-9-]{1,39}$"
"""A follow-up's protocol id, as the grammar lets a small model write it."""
TEMPLATE = "tools/propose_followups.j2"
MAX_FOLLOWUPS = 3


@dataclass(frozen=True)
class Sizes:
    """Caps on the proposal, in the tool schema (a small local model fills strings to them)."""

    max_tokens: int
    most: int
    """Follow-ups in one proposal."""
    title: int
    text: int
    changes: int
    brief_chars: int
    """How much of each of the summary, the analysis and the report the brief shows (of the
    protocol, twice as much): a small model's context holds the brief and the reply."""


ONLINE = Sizes(
    max_tokens=4096, most=MAX_FOLLOWUPS, title=120, text=600, changes=3000, brief_chars=12_000
)
COMPACT = Sizes(max_tokens=1600, most=1, title=60, text=120, changes=300, brief_chars=1_200)
"""For a small local model: one follow-up whose strings, filled to their caps, still close
within max_tokens (a reply cut off there is no tool call); its changes are structured
(`Changes`), not YAML."""


class FollowUp(BaseModel):
    """One proposed experiment."""

    title: str = Field(min_length=1)
    reason: str = Field(min_length=1, description="Why this is the next thing to learn.")
    kind: Literal["amend", "new"] = Field(
        description="amend: this design, changed; new: a new question built from it."
    )
    id: str = Field(min_length=1, description="The new protocol's id.")
    changes: str = Field(
        min_length=1, description="YAML: the sections to merge into the run's protocol."
    )
    forecast: str = Field(description="What the proposer expects the run to show.")


class Proposal(BaseModel):
    """The proposer's `propose_followups` input."""

    followups: list[FollowUp] = Field(min_length=1, max_length=MAX_FOLLOWUPS)


@dataclass(frozen=True)
class NextBrief:
    title: str
    question: str
    protocol_id: str
    summary: str
    statistics: str
    report: str
    protocol: str
    """The run's protocol.yaml: what the changes are merged into."""

    def digest(self) -> str:
        """The ledger key's part for this brief (SUMMARY.md left out: a logged choice
        rewrites it, and asking again must not pay again)."""
        parts = (self.statistics, self.report, self.protocol)
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class NextResult:
    proposal: Proposal | None
    error: str | None = None
    calls: list[CallResult] = field(default_factory=list)

    @property
    def cached(self) -> bool:
        return all(c.cached for c in self.calls)


@dataclass(frozen=True)
class Changes:
    """A structured `changes` for a small model, which cannot be trusted to write YAML: the
    JSON schema its input is decoded under, and how that input becomes the YAML mapping merged
    into the protocol (both from the caller, which knows the protocol)."""

    schema: dict[str, Any]
    to_yaml: Callable[[dict[str, Any]], str]


Check = Callable[[FollowUp], list[str]]
"""The caller's check of one follow-up: its errors, as the model should read them (none: valid)."""


def followups_tool(
    sizes: Sizes, handler: Callable[[dict[str, Any]], Any], changes: Changes | None = None
) -> Tool:
    def string(n: int, macro: str) -> dict[str, Any]:
        return {"type": "string", "maxLength": n, "description": say(TEMPLATE, macro)}

    followup = {
        "type": "object",
        "properties": {
            "title": string(sizes.title, "title"),
            "reason": string(sizes.text, "reason"),
            "kind": {
                "type": "string",
                "enum": ["amend", "new"],
                "description": say(TEMPLATE, "kind"),
            },
            "id": {**string(40, "id"), "pattern": ID},
            "changes": string(sizes.changes, "changes") if changes is None else changes.schema,
            "forecast": string(sizes.text, "forecast"),
        },
        "required": ["title", "reason", "kind", "id", "changes", "forecast"],
        "additionalProperties": False,
    }
    schema = {
        "type": "object",
        "properties": {
            "followups": {
                "type": "array",
                "items": followup,
                "minItems": 1,
                "maxItems": sizes.most,
            }
        },
        "required": ["followups"],
        "additionalProperties": False,
    }
    return Tool(PROPOSE_FOLLOWUPS, say(TEMPLATE, "description"), schema, handler)


async def propose(
    client: LLMClient,
    brief: NextBrief,
    check: Check,
    *,
    model: str,
    params: dict[str, Any],
    sizes: Sizes = ONLINE,
    changes: Changes | None = None,
    max_attempts: int = 3,
    retry: Retry = Retry(),
    on_retry: Callable[[CallResult, int, float], None] | None = None,
) -> NextResult:
    """One forced `propose_followups` call, asked again with every error while the proposal is
    invalid or a follow-up fails `check` (at most `max_attempts` calls). A call that keeps
    failing for a passing reason raises `Unavailable`: an outage is not a result."""
    system = render("followups_system.j2", sizes=sizes, most=sizes.most)
    prompt = render("followups_brief.j2", brief=brief, sizes=sizes)
    params = {**params, "max_tokens": sizes.max_tokens}
    spec = CallSpec("next", "followups", "proposer")
    chat = Chat(client, spec, model, params, system, retry=retry, on_retry=on_retry)

    def parse(tool_input: dict[str, Any]) -> Proposal:
        if changes is not None:  # the structured changes, as the YAML they stand for
            tool_input = _as_yaml(tool_input, changes)
        try:
            proposal = Proposal.model_validate(tool_input)
        except ValidationError as e:
            raise ToolInputError(explain(e)) from e
        errors = []
        ids = [f.id for f in proposal.followups]
        for n, f in enumerate(proposal.followups, 1):
            if ids.count(f.id) > 1:
                errors.append(f"follow-up {n} ({f.id}): id: used by another follow-up")
            errors += [f"follow-up {n} ({f.id}): {e}" for e in check(f)]
        if errors:
            raise ToolInputError("\n".join(errors))
        return proposal

    def retry_text(result: CallResult, error: str) -> str:
        return say(TEMPLATE, "retry", error=error)

    forced = Forced(parse, retry_text, say(TEMPLATE, "no_call"))
    got = await forced.run(
        chat,
        prompt,
        followups_tool(sizes, forced.accept, changes),
        key=lambda attempt: {"attempt": attempt, "brief": brief.digest()},
        max_attempts=max_attempts,
        who="proposer",
    )
    return NextResult(got.value, got.error, got.calls)


def _as_yaml(tool_input: dict[str, Any], changes: Changes) -> dict[str, Any]:
    out = dict(tool_input)
    followups = out.get("followups")
    if isinstance(followups, list):
        out["followups"] = [
            {**f, "changes": changes.to_yaml(f["changes"])}
            if isinstance(f, dict) and isinstance(f.get("changes"), dict)
            else f
            for f in followups
        ]
    return out
