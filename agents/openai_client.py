"""Subject calls through the official `openai` SDK (async): OpenAI, or any server that speaks its
Chat Completions API (vLLM, llama.cpp's server, gateways) at the endpoint's `base_url`.

The ledger, the started records and the attempt counting are `LLMClient`'s (this client only
builds the request, sends it and reads the answer), so an OpenAI call is keyed, replayed, counted
and recorded exactly as an Anthropic one, and its failures carry the same error strings
(`HTTP 429: …`, `APIConnectionError: …`, `APITimeoutError: …`) that `retryable` classifies.

A Messages-style call maps onto a chat completion: the system prompt becomes a system message,
text content blocks are joined into one string, `stop_sequences` becomes `stop`; the answer comes
back as one text block, with `finish_reason` "stop" as "end_turn" and "length" as "max_tokens".
Tools are not mapped: the evaluator and analyst agents stay on the Anthropic API.
"""

from __future__ import annotations

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

STOP_REASON = {"stop": "end_turn", "length": "max_tokens"}
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
    model: str, params: dict[str, Any], messages: list[dict[str, Any]], system: str
) -> dict[str, Any]:
    """A Chat Completions body for a Messages-style call."""
    chat: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    chat += [{"role": m["role"], "content": as_text(m["content"])} for m in messages]
    given = without_unset(params)
    request: dict[str, Any] = {"model": model, "messages": chat}
    request |= {k: given[k] for k in PASSED if k in given}
    if given.get("stop_sequences"):
        request["stop"] = given["stop_sequences"]
    return request


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
    return CallResult(
        key,
        content=[{"type": "text", "text": choice.message.content or ""}],
        stop_reason=STOP_REASON.get(reason, reason) if reason else None,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost_usd=price_usd(model, tokens_in, tokens_out),
    )


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
        if tools or tool_choice:
            raise ValueError("tools are not supported through the openai provider")
        return chat_request(model, params, messages, system)  # `cache`: OpenAI caches itself

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
