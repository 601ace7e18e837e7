"""Subject calls through the official `openai` SDK (async): OpenAI, or any server that speaks its
Chat Completions API (vLLM, llama.cpp's server, gateways) at the endpoint's `base_url`.

The ledger, the started records and the attempt counting are `LLMClient`'s (this client only
builds the request, sends it and reads the answer), so an OpenAI call is keyed, replayed, counted
and recorded exactly as an Anthropic one, and its failures carry the same error strings
(`HTTP 429: …`, `APIConnectionError: …`, `APITimeoutError: …`) that `retryable` classifies.

A Messages-style call maps onto a chat completion: the system prompt becomes a system message,
text content blocks are joined into one string, `stop_sequences` becomes `stop`; the answer comes
back as one text block, with `finish_reason` "stop" as "end_turn" and "length" as "max_tokens".
A conversation's tool calls and results map to the assistant's `tool_calls` and `tool`
messages, the protocol's tools to functions, and function calls in the answer come back as
`tool_use` blocks. `tool_choice` is not mapped: the evaluator and analyst agents stay on the
Anthropic API.
"""

from __future__ import annotations

import json
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from agents.client import (
    AuthenticationFailed,
    CallResult,
    Endpoint,
    LLMClient,
    counting_hooks,
    without_unset,
)
from agents.pricing import price_usd

STOP_REASON = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
"""finish_reason as the Messages API names it; others (content_filter, ...) pass as given."""
PASSED = ("max_tokens", "temperature", "top_p")


def openai_sdk_client(endpoint: Endpoint) -> openai.AsyncOpenAI:
    """The SDK client; each request it sends, retries included, is counted by
    `count_requests`. `base_url` None is the SDK's default (api.openai.com)."""
    return openai.AsyncOpenAI(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key or "none",
        max_retries=endpoint.max_retries,
        timeout=endpoint.timeout_s,
        http_client=openai.DefaultAsyncHttpxClient(event_hooks=counting_hooks()),
    )


def chat_request(
    model: str,
    params: dict[str, Any],
    messages: list[dict[str, Any]],
    system: str,
    tools: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Chat Completions body for a Messages-style call."""
    chat: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for m in messages:
        chat += chat_messages(m)
    given = without_unset(params)
    request: dict[str, Any] = {"model": model, "messages": chat}
    request |= {k: given[k] for k in PASSED if k in given}
    if given.get("stop_sequences"):
        request["stop"] = given["stop_sequences"]
    if tools:
        request["tools"] = [function(t) for t in tools]
    return request


def chat_messages(message: dict[str, Any]) -> list[dict[str, Any]]:
    """One Messages-style message as chat messages: an assistant's tool calls become its
    `tool_calls`, each tool result a `tool` message answering its call's id (before the user's
    own words, if the message has any)."""
    content = message["content"]
    if isinstance(content, str):
        return [{"role": message["role"], "content": content}]
    if message["role"] == "assistant":
        out: dict[str, Any] = {"role": "assistant", "content": as_text(content) or None}
        calls = [b for b in content if b.get("type") == "tool_use"]
        if calls:
            out["tool_calls"] = [
                {
                    "id": b["id"],
                    "type": "function",
                    "function": {"name": b["name"], "arguments": json.dumps(b.get("input") or {})},
                }
                for b in calls
            ]
        return [out]
    results = [
        {"role": "tool", "tool_call_id": b["tool_use_id"], "content": as_text(b.get("content", ""))}
        for b in content
        if b.get("type") == "tool_result"
    ]
    text = as_text(content)
    return results + ([{"role": "user", "content": text}] if text or not results else [])


def function(tool: dict[str, Any]) -> dict[str, Any]:
    """A Messages API tool as a chat-completions function."""
    spec = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object"}}
    if tool.get("description"):
        spec["description"] = tool["description"]
    return {"type": "function", "function": spec}


def as_text(content: str | list[dict[str, Any]]) -> str:
    """A message's content as one string: its text blocks joined."""
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if b.get("type") == "text")


def completion_result(key: str, model: str, completion: ChatCompletion) -> CallResult:
    """A ledger result from a chat completion: its text, stop reason, usage and list price.
    Prompt tokens the server had cached are priced as fresh ones (an upper bound)."""
    choice = completion.choices[0]
    usage = completion.usage
    tokens_in = usage.prompt_tokens if usage else 0
    tokens_out = usage.completion_tokens if usage else 0
    reason = choice.finish_reason
    content: list[dict[str, Any]] = [{"type": "text", "text": choice.message.content or ""}]
    for call in choice.message.tool_calls or []:
        if call.type == "function":
            content.append(tool_use(call.id, call.function.name, call.function.arguments))
    return CallResult(
        key,
        content=content,
        stop_reason=STOP_REASON.get(reason, reason) if reason else None,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost_usd=price_usd(model, tokens_in, tokens_out),
    )


def tool_use(id_: str, name: str, arguments: str) -> dict[str, Any]:
    """A function call of a chat completion as a Messages API tool_use block. Arguments that are
    not a JSON object are kept as they came, under `arguments`."""
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError:
        parsed = None
    args = parsed if isinstance(parsed, dict) else {"arguments": arguments}
    return {"type": "tool_use", "id": id_, "name": name, "input": args}


class OpenAIClient(LLMClient):
    """`LLMClient` on the Chat Completions API."""

    def connect(self, endpoint: Endpoint) -> openai.AsyncOpenAI:
        return openai_sdk_client(endpoint)

    def request(
        self,
        model: str,
        params: dict[str, Any],
        messages: list[dict[str, Any]],
        system: str,
        tools: list[dict[str, Any]] | None,
        tool_choice: dict[str, Any] | None,
        cache: bool,
    ) -> dict[str, Any]:
        if tool_choice:
            raise ValueError("tool_choice is not supported through the openai provider")
        return chat_request(model, params, messages, system, tools)  # `cache`: OpenAI caches

    async def _create(self, key: str, model: str, request: dict[str, Any]) -> CallResult:
        try:
            completion = await self._sdk.chat.completions.create(**request)
        except openai.AuthenticationError as e:
            where = self.endpoint.base_url or "OpenAI API"
            raise AuthenticationFailed(f"{where}: {error_message(e)}") from e
        except openai.APIStatusError as e:
            return CallResult(key, error=f"HTTP {e.status_code}: {error_message(e)}")
        except openai.APIConnectionError as e:  # APITimeoutError is one
            return CallResult(key, error=f"{type(e).__name__}: {e}")
        return completion_result(key, model, completion)


def error_message(e: openai.APIStatusError) -> str:
    """The server's own error message (the SDK keeps the body's `error` object), else the
    SDK's."""
    body = e.body if isinstance(e.body, dict) else {}
    return str(body.get("message") or e.message)
