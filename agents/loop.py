"""The one tool loop on the Messages API: call the model, run the tools it asked for, answer,
repeat. Every agent runs on it: an evaluator's conversation, its compaction and its scripted
mode, and the analyst.

Each turn is a ledger call whose key carries `Hooks.key(turn)`, so a re-run replays the
conversation from the ledger instead of paying for it again. A tool that raises
`ToolInputError` answers the model with an error result it can fix (`Hooks.refusal` may add to
the text); anything else propagates. With `force`, the model must call that tool (tool_choice):
a forced call whose input is refused is asked again, with the error, until `Hooks.done` says it
was accepted or the turns run out; `retried` builds such a turn (the opening and the latest
exchange only, so a small model's context does not fill with failed drafts).

A call that fails for a reason that may pass (`agents.client.retryable`: overload, rate limits,
lost connections), after the SDK's own retries, is sent again up to `Retry.tries` times, waiting
longer each time (`Chat.on_retry` hears of each); if it still fails, `Unavailable` propagates:
the loop never hands an outage to its hooks as if the model had answered.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agents.client import CallResult, CallSpec, LLMClient, Unavailable, retryable
from agents.prompts import say
from agents.tools import Tool, ToolInputError

Message = dict[str, Any]
Content = str | list[dict[str, Any]]
Ending = Literal["done", "text", "error", "turns"]
"""Why a loop ended: `done` said so after a tool turn; a reply without a tool call (`text`) or a
failed call (`error`) that its hook did not answer; the turns ran out."""


@dataclass(frozen=True)
class Retry:
    """How often a turn whose call failed for a passing reason is sent again, after the SDK's
    own retries: `tries` more times, waiting `wait_s`, then twice as long each time."""

    tries: int = 2
    wait_s: float = 15.0

    def waits(self) -> list[float]:
        return [self.wait_s * 2**n for n in range(self.tries)]

    def after(self) -> float:
        """The wait that would come after the last try: before a whole round is made again."""
        return self.wait_s * 2**self.tries


@dataclass(frozen=True)
class Chat:
    """The fixed part of every turn: who calls which model, with which instructions."""

    client: LLMClient
    spec: CallSpec
    model: str
    params: dict[str, Any]
    system: str = ""
    cache: bool = False
    """Mark the static prefix and the conversation for the API's prompt cache."""
    retry: Retry = Retry()
    on_retry: Callable[[CallResult, int, float], None] | None = None
    """Told of each retry: the failed result, the retry's number (1, 2, ...), the wait."""

    async def send(
        self,
        messages: list[Message],
        tools: Sequence[Tool],
        key_extra: dict[str, Any],
        force: str | None = None,
    ) -> CallResult:
        """One turn's call (the same ledger key on every retry, so a success is kept once and
        the failed tries add to its `attempts`); raises `Unavailable` when it keeps failing."""
        result = await self._call(messages, tools, key_extra, force)
        for n, wait in enumerate(self.retry.waits(), 1):
            if result.error is None or not retryable(result.error):
                return result
            if self.on_retry is not None:
                self.on_retry(result, n, wait)
            await asyncio.sleep(wait)
            result = await self._call(messages, tools, key_extra, force)
        if result.error is not None and retryable(result.error):
            tries = len(self.retry.waits()) + 1
            hint = (
                "; one that always times out may need a longer timeout" if _timeout(result) else ""
            )
            raise Unavailable(f"{result.error} (still failing after {tries} tries{hint})")
        return result

    async def _call(
        self,
        messages: list[Message],
        tools: Sequence[Tool],
        key_extra: dict[str, Any],
        force: str | None,
    ) -> CallResult:
        return await self.client.call(
            self.spec,
            model=self.model,
            params=self.params,
            system=self.system,
            messages=messages,
            tools=[t.definition for t in tools],
            tool_choice={"type": "tool", "name": force} if force else None,
            key_extra=key_extra,
            cache=self.cache,
        )


def retry_note(who: str, result: CallResult, attempt: int, retry: Retry, wait_s: float) -> str:
    """The LOG.md line for a call sent again (`Chat.on_retry`): whose, why, when, how often."""
    return (
        f"{who} call failed after the SDK's retries ({result.error}); sending it again in "
        f"{wait_s:g} s (retry {attempt} of {retry.tries})"
    )


def _timeout(result: CallResult) -> bool:
    return (result.error or "").startswith(("APITimeoutError", "HTTP 408"))


def _by_turn(turn: int) -> dict[str, Any]:
    return {"turn": turn}


def _end(result: CallResult, messages: list[Message]) -> list[Message] | None:
    return None


def _never(result: CallResult) -> bool:
    return False


def _as_is(result: CallResult, error: str) -> str:
    return error


def continued(messages: list[Message], result: CallResult, answer: Content) -> list[Message]:
    """The conversation so far, the model's reply and our answer."""
    return [*messages, *exchange(result, answer)]


def retried(messages: list[Message], result: CallResult, answer: Content) -> list[Message]:
    """The opening, the model's reply and our answer: a forced call asked again."""
    return [messages[0], *exchange(result, answer)]


@dataclass(frozen=True)
class Hooks:
    """How one agent's loop differs from the plain one (which ends on the first reply without a
    tool call and on the first failed call)."""

    key: Callable[[int], dict[str, Any]] = _by_turn
    """The ledger key's extra part for a turn."""
    on_text: Callable[[CallResult, list[Message]], list[Message] | None] = _end
    """A reply without a tool call: the next turn's messages, or None to end."""
    on_error: Callable[[CallResult, list[Message]], list[Message] | None] = _end
    """A failed call: the next turn's messages, or None to end."""
    done: Callable[[CallResult], bool] = _never
    """After a tool turn: end here?"""
    refusal: Callable[[CallResult, str], str] = _as_is
    """The text of a refused tool call, as the model gets it."""
    history: Callable[[list[Message], CallResult, Content], list[Message]] = continued
    """After a tool turn: the next turn's messages, from these, the reply and the tool results."""


@dataclass
class Transcript:
    messages: list[Message]
    results: list[CallResult] = field(default_factory=list)
    ended: Ending = "turns"

    @property
    def final(self) -> CallResult:
        return self.results[-1]


def user(content: Content) -> Message:
    return {"role": "user", "content": content}


def exchange(result: CallResult, answer: Content) -> list[Message]:
    """The model's reply and our answer to it, as the next turn carries them."""
    content = result.content or [{"type": "text", "text": say("tool_loop.j2", "empty_reply")}]
    return [{"role": "assistant", "content": content}, user(answer)]


def tool_uses(result: CallResult) -> list[dict[str, Any]]:
    return [b for b in result.content if b.get("type") == "tool_use"]


async def tool_loop(
    chat: Chat,
    messages: list[Message],
    tools: Sequence[Tool] | Callable[[], Sequence[Tool]],
    *,
    max_turns: int = 8,
    first_turn: int = 0,
    force: str | None = None,
    hooks: Hooks = Hooks(),
) -> Transcript:
    """Run turns from `first_turn` until a hook ends the loop or `max_turns` were made. `tools`
    may be a function, asked again each turn (a forced call's schema can narrow as it goes)."""
    transcript = Transcript(list(messages))
    for turn in range(first_turn, first_turn + max_turns):
        offered = tools() if callable(tools) else tools
        result = await chat.send(transcript.messages, offered, hooks.key(turn), force)
        transcript.results.append(result)
        uses = [] if result.error else tool_uses(result)
        if not uses:
            hook = hooks.on_error if result.error else hooks.on_text
            following = hook(result, transcript.messages)
            if following is None:
                transcript.ended = "error" if result.error else "text"
                return transcript
            transcript.messages = following
            continue
        answers = [_answer(offered, use, result, hooks) for use in uses]
        transcript.messages = hooks.history(transcript.messages, result, answers)
        if hooks.done(result):
            transcript.ended = "done"
            return transcript
    return transcript


def _answer(
    tools: Sequence[Tool], use: dict[str, Any], result: CallResult, hooks: Hooks
) -> dict[str, Any]:
    block = {"type": "tool_result", "tool_use_id": use["id"]}
    tool = next((t for t in tools if t.name == use["name"]), None)
    try:
        if tool is None:
            raise ToolInputError(say("tool_loop.j2", "no_such_tool", name=repr(use["name"])))
        output = tool.handler(use.get("input") or {})
    except ToolInputError as e:
        return {**block, "content": hooks.refusal(result, str(e)), "is_error": True}
    return {**block, "content": output if isinstance(output, str) else json.dumps(output)}
