"""The one LLM client: the official `anthropic` SDK (async), for cloud and local models alike.

Every call goes through a ledger keyed by (protocol hash, stage, item, role, model, params). A key
with a recorded result is answered from the ledger and never sent again, so a stage that re-runs
after an interrupt or a crash pays only for the calls still missing. Failed calls are recorded
too (each request counts as an attempt) but are not results: whether one is made again is the
caller's choice (`retryable` says whether it may pass: collect's follow-up passes, the agent
loop's retries).

A call is recorded as started (`Ledger.begin`) just before it is sent, and that record is cleared
in the same transaction that stores its result. A process killed mid-call leaves the record
behind: the call may have been paid although its answer never reached the ledger, and the run
shows it as "possibly paid".

The SDK retries inside one `messages.create`; every HTTP request it sends, retries included,
passes an httpx request hook (`sdk_client`), so a call's `attempts` in the ledger is the number
of requests actually made for it, not the number of times we asked the SDK.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

import anthropic

from agents.calls import CallResult, CallSpec, Ledger, LedgerEntry, Started, call_key
from agents.failures import AuthenticationFailed, Unavailable, retryable
from agents.pricing import price_usd

__all__ = [  # the call's types and failures live beside this module; importable from here too
    "AuthenticationFailed",
    "CallResult",
    "CallSpec",
    "Endpoint",
    "LLMClient",
    "Ledger",
    "LedgerEntry",
    "Started",
    "Unavailable",
    "call_key",
    "count_requests",
    "counting_hooks",
    "error_message",
    "message_result",
    "retryable",
    "sdk_client",
    "with_cache_control",
    "without_unset",
]


@dataclass(frozen=True)
class Endpoint:
    """Where a model is served and how to talk to it."""

    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    """Never in a repr: an exception or log line that shows the endpoint must not show the key."""
    max_retries: int = 4
    timeout_s: float = 120.0
    concurrency: int = 8
    local: bool = False
    """A local worker: calls cost nothing."""


@dataclass
class Sent:
    """HTTP requests sent so far for the call in progress."""

    requests: int = 0


_sent: ContextVar[Sent | None] = ContextVar("agents_client_sent", default=None)


@contextmanager
def count_requests() -> Iterator[Sent]:
    """Count the HTTP requests an SDK client from `sdk_client` sends inside this block (in this
    task: concurrent calls each count their own)."""
    sent = Sent()
    token = _sent.set(sent)
    try:
        yield sent
    finally:
        _sent.reset(token)


async def _count_request(request: object) -> None:
    sent = _sent.get()
    if sent is not None:
        sent.requests += 1


def counting_hooks() -> dict[str, list[Any]]:
    """httpx event hooks that count each request sent for `count_requests`: an SDK client built
    on an httpx client with them counts its retries too."""
    return {"request": [_count_request]}


def sdk_client(endpoint: Endpoint) -> anthropic.AsyncAnthropic:
    """The one SDK client constructor (one client per event loop: it holds the connection pool);
    each request it sends, retries included, is counted by `count_requests`."""
    hooks = counting_hooks()
    return anthropic.AsyncAnthropic(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key or "none",
        max_retries=endpoint.max_retries,
        timeout=endpoint.timeout_s,
        http_client=anthropic.DefaultAsyncHttpxClient(event_hooks=hooks),
    )


class LLMClient:
    """Calls one endpoint with bounded concurrency. Create it inside the event loop that uses it.

    A client for another API (`agents.openai_client`) subclasses it and replaces `connect`,
    `request` and `_create`: the ledger, the started records and the attempt counting stay
    this class's, one loop for every provider."""

    def __init__(self, endpoint: Endpoint, ledger: Ledger, protocol_sha: str):
        self.endpoint = endpoint
        self.ledger = ledger
        self.protocol_sha = protocol_sha
        self._sdk = self.connect(endpoint)
        self._slots = asyncio.Semaphore(endpoint.concurrency)

    def connect(self, endpoint: Endpoint) -> Any:
        """This client's SDK client for `endpoint` (here: the anthropic SDK's)."""
        return sdk_client(endpoint)

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._sdk.close()

    async def call(
        self,
        spec: CallSpec,
        *,
        model: str,
        params: dict[str, Any],
        messages: list[dict[str, Any]],
        system: str = "",
        tools: list[dict[str, Any]] | None = None,
        tool_choice: dict[str, Any] | None = None,
        key_extra: dict[str, Any] | None = None,
        cache: bool = False,
    ) -> CallResult:
        """Make (or replay) one Messages API call.

        `params` holds generation settings (max_tokens, temperature, ...); they are part of the
        key. `key_extra` adds identity that is not a request field (e.g. the attempt number).
        `cache` marks the static prefix (tools, system) and the conversation so far for the
        API's prompt cache (`cache_control`), so parallel agents with the same instructions and
        each agent's growing conversation are read from the cache instead of paid in full.
        """
        key = call_key(self.protocol_sha, spec, model, {**params, **(key_extra or {})})
        if (hit := self.ledger.lookup(key)) is not None:
            return hit
        request = self.request(model, params, messages, system, tools, tool_choice, cache)
        async with self._slots:
            # recorded as started inside the slot, just before it is sent: a call waiting for a
            # slot has not been sent, and could not have been paid if the process died now
            attempt = uuid.uuid4().hex
            factor = 0.0 if self.endpoint.local else 1.0
            self.ledger.begin(attempt, [Started.of(key, spec, request, price_factor=factor)])
            started = time.monotonic()
            try:
                result = await self._send(key, model, request)
            except AuthenticationFailed:
                self.ledger.unsent(attempt)
                raise
            latency = time.monotonic() - started
        self.ledger.store(LedgerEntry(result, spec, model, params, request, latency), attempt)
        return result

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
        """The request body as this client's API takes it (here: the Messages API's); the
        ledger keeps it as what was sent."""
        request: dict[str, Any] = {"model": model, "messages": messages, **without_unset(params)}
        if system:
            request["system"] = system
        if tools:
            request["tools"] = tools
        if cache:  # the local worker honours cache_control too; other servers ignore it
            request = with_cache_control(request)
        if tool_choice:
            request["tool_choice"] = tool_choice
        return request

    async def _send(self, key: str, model: str, request: dict[str, Any]) -> CallResult:
        with count_requests() as sent:
            result = await self._create(key, model, request)
        return replace(result, attempts=sent.requests)

    async def _create(self, key: str, model: str, request: dict[str, Any]) -> CallResult:
        try:
            msg = await self._sdk.messages.create(**_sdk_kwargs(request))
        except anthropic.AuthenticationError as e:
            raise AuthenticationFailed(f"{self.endpoint.base_url or 'Anthropic API'}: {e}") from e
        except anthropic.APIStatusError as e:
            return CallResult(key, error=f"HTTP {e.status_code}: {error_message(e)}")
        except (anthropic.APIConnectionError, anthropic.APITimeoutError) as e:
            return CallResult(key, error=f"{type(e).__name__}: {e}")
        return message_result(key, model, msg, local=self.endpoint.local)


def message_result(
    key: str, model: str, msg: anthropic.types.Message, *, local: bool, price_factor: float = 1.0
) -> CallResult:
    """A ledger result from an API message: content, usage with cache tokens, and its price
    (`price_factor` 0.5 for the Batches API; local calls cost nothing)."""
    usage = msg.usage
    written = getattr(usage, "cache_creation_input_tokens", None) or 0
    read = getattr(usage, "cache_read_input_tokens", None) or 0
    price = price_usd(model, usage.input_tokens, usage.output_tokens, written, read)
    return CallResult(
        key,
        content=[b.model_dump(exclude_none=True) for b in msg.content],
        stop_reason=msg.stop_reason,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=0.0 if local else (None if price is None else price * price_factor),
        cache_write_tokens=written,
        cache_read_tokens=read,
    )


SAMPLING = ("temperature", "top_p", "top_k")
EPHEMERAL = {"type": "ephemeral"}


def with_cache_control(request: dict[str, Any]) -> dict[str, Any]:
    """The request with cache breakpoints on the last tool, the system prompt and the last
    message (three of the four the API allows); the caller's objects are not modified."""
    out = dict(request)
    if out.get("tools"):
        out["tools"] = [*out["tools"][:-1], {**out["tools"][-1], "cache_control": EPHEMERAL}]
    if isinstance(out.get("system"), str):
        out["system"] = [{"type": "text", "text": out["system"], "cache_control": EPHEMERAL}]
    if out.get("messages"):
        last = out["messages"][-1]
        content = last["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if content:
            content = [*content[:-1], {**content[-1], "cache_control": EPHEMERAL}]
        out["messages"] = [*out["messages"][:-1], {**last, "content": content}]
    return out


def _sdk_kwargs(request: dict[str, Any]) -> dict[str, Any]:
    """The SDK (1.x) no longer takes sampling parameters as arguments; the API still accepts
    them in the body, so they travel in `extra_body` — the same wire payload either way."""
    kwargs = {k: v for k, v in request.items() if k not in SAMPLING}
    extra = {k: request[k] for k in SAMPLING if k in request}
    return {**kwargs, "extra_body": extra} if extra else kwargs


def without_unset(params: dict[str, Any]) -> dict[str, Any]:
    """Sampling params as the API takes them: unset (None) and empty-list values left out."""
    return {k: v for k, v in params.items() if v is not None and v != []}


def error_message(e: anthropic.APIStatusError) -> str:
    """The API's own error message from an error response, else the SDK's."""
    body = e.body if isinstance(e.body, dict) else {}
    err = body.get("error") if isinstance(body.get("error"), dict) else {}
    return str(err.get("message") or e.message)
