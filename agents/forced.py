"""A forced tool call, asked again with each refusal until its input is accepted: the analyst's
draft, a design stage, the follow-up proposals. One copy of what those agents share on the tool
loop (agents/loop.py): which reply counts, what the model is told when it is refused or answers
in text, and how the end reads.

    forced = Forced(parse, retry_text, no_call_text)
    tool = Tool(name, description, schema, forced.accept)
    got = await forced.run(chat, prompt, tool, key=..., max_attempts=3, who="analyst")
    got.value or got.error

`parse` turns the tool input into the accepted value or raises `ToolInputError` with what the
model should fix; the retry carries only the opening and the latest exchange (`retried`), so a
small model's context does not fill with failed drafts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from agents.client import CallResult
from agents.loop import Chat, Hooks, Message, retried, tool_loop, user
from agents.tools import Tool

T = TypeVar("T")


@dataclass
class Accepted(Generic[T]):
    """The accepted value, or why there is none; and every call made for it."""

    value: T | None
    error: str | None
    calls: list[CallResult] = field(default_factory=list)


class Forced(Generic[T]):
    """One forced call as it goes: the accepted value, or why the last input was refused."""

    def __init__(
        self,
        parse: Callable[[dict[str, Any]], T],
        retry_text: Callable[[CallResult, str], str],
        no_call_text: str,
    ):
        self.parse = parse
        self.retry_text = retry_text
        self.no_call_text = no_call_text
        self.value: T | None = None
        self.error = "no attempt made"

    def accept(self, tool_input: dict[str, Any]) -> str:
        """The tool's handler: raises `ToolInputError` (from `parse`) for a refused input."""
        self.value = self.parse(tool_input)
        return "ok"

    def refused(self, result: CallResult, error: str) -> str:
        self.error = error
        return self.retry_text(result, error)

    def no_call(self, result: CallResult, messages: list[Message]) -> list[Message]:
        return retried(messages, result, self.refused(result, self.no_call_text))

    async def run(
        self,
        chat: Chat,
        prompt: str,
        tool: Tool,
        *,
        key: Callable[[int], dict[str, Any]],
        max_attempts: int,
        who: str,
    ) -> Accepted[T]:
        """Force `tool` until its input is accepted or `max_attempts` calls are made. A call
        that keeps failing for a passing reason raises `Unavailable` (an outage is not a value);
        one that fails otherwise ends it with `who`'s call failure as the error."""
        hooks = Hooks(
            key=key,
            on_text=self.no_call,
            done=lambda result: self.value is not None,
            refusal=self.refused,
            history=retried,
        )
        transcript = await tool_loop(
            chat, [user(prompt)], [tool], max_turns=max_attempts, force=tool.name, hooks=hooks
        )
        calls = transcript.results
        if transcript.ended == "error":
            return Accepted(None, f"{who} call failed: {transcript.final.error}", calls)
        if self.value is not None:
            return Accepted(self.value, None, calls)
        error = f"no valid {tool.name} input after {max_attempts} attempts: {self.error}"
        return Accepted(None, error, calls)
