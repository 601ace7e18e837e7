"""A client-side tool loop on the Messages API: call, run the tools the model asked for, repeat.

Every turn is a ledger call (turn number in the key), so a re-run replays the conversation from
the ledger instead of paying for it again. A tool that raises `ToolInputError` answers the model
with an error result it can fix; anything else propagates.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.client import CallResult, CallSpec, LLMClient
from agents.truesight import ToolInputError

Handler = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Tool:
    definition: dict[str, Any]
    handler: Handler


@dataclass
class Transcript:
    messages: list[dict[str, Any]]
    results: list[CallResult] = field(default_factory=list)
    tool_calls: list[tuple[str, dict[str, Any], dict[str, Any] | str]] = field(default_factory=list)
    """(tool name, input, output or error text) in the order they ran."""

    @property
    def final(self) -> CallResult:
        return self.results[-1]


async def tool_loop(
    client: LLMClient,
    spec: CallSpec,
    *,
    model: str,
    params: dict[str, Any],
    system: str,
    messages: list[dict[str, Any]],
    tools: list[Tool],
    max_turns: int = 8,
) -> Transcript:
    by_name = {t.definition["name"]: t for t in tools}
    transcript = Transcript(list(messages))
    for turn in range(max_turns):
        result = await client.call(
            spec,
            model=model,
            params=params,
            system=system,
            messages=transcript.messages,
            tools=[t.definition for t in tools],
            key_extra={"turn": turn},
        )
        transcript.results.append(result)
        uses = [b for b in result.content if b.get("type") == "tool_use"]
        if result.error or not uses:
            return transcript
        answers = []
        for use in uses:
            output, is_error = await _run(by_name.get(use["name"]), use)
            transcript.tool_calls.append((use["name"], use.get("input", {}), output))
            block = {"type": "tool_result", "tool_use_id": use["id"]}
            text = output if isinstance(output, str) else json.dumps(output)
            answers.append({**block, "content": text, **({"is_error": True} if is_error else {})})
        transcript.messages = transcript.messages + [
            {"role": "assistant", "content": result.content},
            {"role": "user", "content": answers},
        ]
    return transcript


async def _run(tool: Tool | None, use: dict[str, Any]) -> tuple[dict[str, Any] | str, bool]:
    if tool is None:
        return f"there is no tool named {use['name']!r}", True
    try:
        return await asyncio.to_thread(tool.handler, use.get("input", {})), False
    except ToolInputError as e:
        return str(e), True
