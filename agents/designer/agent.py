"""The designer agent: one stage of a protocol drafted in one forced `write_<stage>` tool call
(and, for the materials, further batches of tasks and plants in `add_<stage>` calls).

It runs on the one tool loop (agents/loop.py) as the analyst does. The orchestrator gives it,
per stage, the tool's JSON schema (derived from the protocol schema) and `check`, which merges
the draft into the protocol so far and returns the loader's errors (`line N: field: message`,
N a line of the stage's own YAML); a draft with errors goes back to the model as a tool error,
the whole draft asked again, until it is accepted or `max_attempts` calls were made.

Every call goes through the ledger under (stage `design`, item the stage's name, role
`designer`) with the attempt, the batch and the revision (one per rejection note) as key parts: a
design killed and started again replays what it had paid for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.client import CallResult, CallSpec, LLMClient
from agents.forced import Forced
from agents.loop import Chat, Retry
from agents.prompts import render, say
from agents.tools import Tool, ToolInputError

TEMPLATE = "tools/write_stage.j2"

Check = Callable[[dict[str, Any], bool], list[str]]
"""A draft's problems, one per line; empty when it is accepted. The flag says whether this is
the call's last attempt (what is refused then ends the stage's draft)."""


@dataclass(frozen=True)
class Wanted:
    """What a materials call is asked for, from the plan's declared kinds and counts."""

    tasks: int
    plants: int
    """The plan's totals."""
    task_kinds: list[str]
    plant_kinds: list[str]
    have_tasks: int
    have_plants: int
    """What the materials hold before this call."""
    missing_kinds: list[str]
    """Declared kinds with nothing of theirs yet."""
    write_tasks: int
    write_plants: int
    """How many to write in this call."""


@dataclass(frozen=True)
class StageBrief:
    """What the designer is told for one stage."""

    question: str
    stage: str
    title: str
    """What this stage decides."""
    so_far: str
    """The protocol drafted so far, as YAML (empty at the first stage)."""
    example: str = ""
    """A protocol to follow in style and schema (`--from`), as its file's text."""
    note: str = ""
    """The human's note on the rejected draft, when revising."""
    earlier: tuple[str, ...] = ()
    """The human's notes on drafts rejected before that one, oldest first: a revision keeps
    to every note, not only the last (their drafts are not shown again)."""
    rejected: str = ""
    """The rejected draft, as YAML, when revising."""
    revision: int = 0
    """How many times this stage was rejected: a revision is a new call, not a replay."""
    batch: int = 0
    """0: the stage's sections; 1, 2, ...: a further batch of tasks and plants for them."""
    wanted: Wanted | None = None
    """For the materials: the tasks and plants asked for in this call."""

    @property
    def tool(self) -> str:
        return f"write_{self.stage}" if self.batch == 0 else f"add_{self.stage}"


@dataclass(frozen=True)
class StageDraft:
    sections: dict[str, Any] | None
    error: str | None = None
    calls: list[CallResult] = field(default_factory=list)


async def draft_stage(
    client: LLMClient,
    brief: StageBrief,
    *,
    schema: dict[str, Any],
    check: Check,
    model: str,
    params: dict[str, Any],
    max_attempts: int = 4,
    retry: Retry = Retry(),
) -> StageDraft:
    """The stage's accepted draft, or the last error after `max_attempts` calls. A call that
    keeps failing for a passing reason raises `Unavailable` (an outage is not a draft)."""
    name = brief.tool
    system = render("designer_system.j2")
    prompt = render("designer_brief.j2", brief=brief, tool=name)
    spec = CallSpec("design", brief.stage, "designer")
    chat = Chat(client, spec, model, params, system, retry=retry)

    turn = 0

    def key(attempt: int) -> dict[str, Any]:
        nonlocal turn
        turn = attempt
        return {
            "attempt": attempt,
            "revision": brief.revision,
            "note": brief.note,
            "batch": brief.batch,
        }

    def parse(tool_input: dict[str, Any]) -> dict[str, Any]:
        problems = check(tool_input, turn + 1 >= max_attempts)
        if problems:
            raise ToolInputError("\n".join(problems))
        return tool_input

    def retry_text(result: CallResult, error: str) -> str:
        cut = result.stop_reason == "max_tokens"
        return say(TEMPLATE, "retry", tool=name, error=error, cut=cut)

    forced = Forced(parse, retry_text, say(TEMPLATE, "no_call"))
    description = say(TEMPLATE, "description", title=brief.title, batch=brief.batch)
    got = await forced.run(
        chat,
        prompt,
        Tool(name, description, schema, forced.accept),
        key=key,
        max_attempts=max_attempts,
        who="designer",
    )
    return StageDraft(got.value, got.error, got.calls)
