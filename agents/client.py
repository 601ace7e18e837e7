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
import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import anthropic

from agents.pricing import price_usd


@dataclass(frozen=True)
class CallSpec:
    """Who makes a call and about what: the non-model part of the ledger key."""

    stage: str
    item: str
    role: str


@dataclass(frozen=True)
class CallResult:
    key: str
    content: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    error: str | None = None
    cached: bool = False
    """True when the result came from the ledger rather than the API."""
    cache_write_tokens: int = 0
    """Input tokens written to the API's prompt cache (priced at 1.25× input)."""
    cache_read_tokens: int = 0
    """Input tokens read from the API's prompt cache (priced at 0.1× input)."""
    attempts: int = 1
    """HTTP requests made for this call, the SDK's retries included."""

    @property
    def text(self) -> str:
        return "".join(b.get("text", "") for b in self.content if b.get("type") == "text")

    def tool_inputs(self, name: str) -> list[dict[str, Any]]:
        return [
            b.get("input", {})
            for b in self.content
            if b.get("type") == "tool_use" and b.get("name") == name
        ]


@dataclass(frozen=True)
class LedgerEntry:
    """One call as the ledger keeps it: its result, who asked, and what was sent."""

    result: CallResult
    spec: CallSpec
    model: str
    params: dict[str, Any]
    """The model parameters as keyed (before `without_unset`), not the request's."""
    request: dict[str, Any]
    latency_s: float


@dataclass(frozen=True)
class Started:
    """A call about to be sent, as the ledger keeps it until its result is stored: what a kill
    before then may have cost."""

    key: str
    spec: CallSpec
    model: str
    input_tokens: int
    """An estimate: the request's JSON length / 4 (about four characters a token in English
    text). Only the API's answer says the exact count, and there is none yet."""
    max_tokens: int
    """The most output tokens the request allows."""
    price_factor: float = 1.0
    """The share of the list price the call costs: 1.0 online, 0.5 through the Message Batches
    API, 0.0 on a local worker."""

    @classmethod
    def of(
        cls,
        key: str,
        spec: CallSpec,
        request: dict[str, Any],
        *,
        price_factor: float = 1.0,
    ) -> Started:
        """The record of `request` (a Messages API request body) as started."""
        return cls(
            key,
            spec,
            request["model"],
            len(json.dumps(request)) // 4,
            int(request.get("max_tokens") or 0),
            price_factor,
        )


class Ledger(Protocol):
    """Where call results are kept; the orchestrator's records store implements it.

    A sender records its calls as started under an attempt id of its choosing (`begin`), before
    sending them — one online call, or every call of a message batch before its create request —
    and passes the same attempt id when it stores each result, which clears that call's record.
    """

    def lookup(self, key: str) -> CallResult | None: ...

    def begin(self, attempt: str, calls: list[Started]) -> None:
        """Record `calls` as started (sent, or about to be) under `attempt`."""

    def store(self, entry: LedgerEntry, attempt: str | None = None) -> None:
        """Record a call's result (or its failure) and clear its record as started under
        `attempt`, in one transaction."""

    def unsent(self, attempt: str) -> None:
        """Clear every call started under `attempt`: none of them was processed (the endpoint
        refused the credentials), so none can have been paid."""


def call_key(protocol_sha: str, spec: CallSpec, model: str, params: dict[str, Any]) -> str:
    blob = json.dumps(
        [protocol_sha, spec.stage, spec.item, spec.role, model, params],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()


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


class AuthenticationFailed(Exception):
    """The endpoint refused our credentials: no point in making the remaining calls."""


class Unavailable(Exception):
    """Calls kept failing for a reason that may pass (rate limits, overload, server errors,
    lost connections), after every retry: the work they were for is not done, and must not be
    recorded as done (a verdict, a response) — it waits for a later pass or `research resume`."""


RETRYABLE_STATUS = frozenset({408, 409, 429})
"""HTTP statuses below 500 that may pass on their own (timeouts, conflicts, rate limits)."""
RETRYABLE_BATCH_ERRORS = frozenset(
    {"api_error", "overloaded_error", "rate_limit_error", "timeout_error"}
)
"""Error types of an `errored` batch result that a new request may not meet again."""


def retryable(error: str) -> bool:
    """Whether a failed call's ledger error may pass on its own, so the call is worth making
    again: 408/409/429 and 5xx, a lost connection or a timeout, a batch result that errored
    for the API's own reasons, expired, was canceled or never came. A request the API refused
    (400, 403, 404, 413, an invalid batch request) fails the same way every time."""
    if m := re.match(r"HTTP (\d{3})\b", error):
        status = int(m.group(1))
        return status >= 500 or status in RETRYABLE_STATUS
    if error.startswith(("APIConnectionError", "APITimeoutError")):
        return True
    if m := re.match(r"batch errored: (\w+)", error):
        return m.group(1) in RETRYABLE_BATCH_ERRORS
    return error.startswith("batch ")  # expired, canceled, result missing, batch lost


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
        if cache and not self.endpoint.local:
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
