"""What the creation and the collection of one subject's message batches share: the calls, what
the API says of a batch, and `Batching`, the endpoint, ledger, state file and SDK client of one
`agents.batches.BatchRunner`, with the pause and the failure record both sides need.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import anthropic

from agents.batch_state import BatchState
from agents.client import (
    AuthenticationFailed,
    CallResult,
    CallSpec,
    Endpoint,
    Ledger,
    LedgerEntry,
    without_unset,
)

BATCH_PRICE = 0.5
"""Batch calls cost half the online price (input, output and prompt-cache tokens alike)."""


@dataclass(frozen=True)
class BatchCall:
    """One call of a batch: the arguments `LLMClient.call` takes for it."""

    spec: CallSpec
    model: str
    params: dict[str, Any]
    messages: list[dict[str, Any]]
    system: str = ""
    key_extra: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class BatchStatus:
    """What the API last said about a batch."""

    id: str
    processing_status: str
    counts: dict[str, int]
    """processing, succeeded, errored, canceled, expired."""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        return self.total - self.counts.get("processing", 0)


Event = Literal["submitted", "resumed", "polled", "ended", "foreign"]
"""`foreign`: a batch found by look-up ended carrying none of our calls (someone else's)."""
Observer = Callable[[Event, BatchStatus], None]


class BatchStopped(Exception):
    """`stop()` turned true while a batch was in flight or about to be created; the state file
    keeps it for the next run."""


@dataclass(frozen=True)
class Batching:
    """One runner's endpoint, ledger, state file and SDK client (with the SDK's own retries),
    shared by the creation and the collection of its batches."""

    endpoint: Endpoint
    ledger: Ledger
    state: BatchState
    sdk: anthropic.AsyncAnthropic
    observe: Observer
    stop: Callable[[], bool]
    poll_s: float

    async def sleep(self, seconds: float | None = None) -> None:
        """`seconds` (`poll_s` by default), in short steps so that a stop request is seen
        promptly."""
        loop = asyncio.get_running_loop()
        until = loop.time() + (self.poll_s if seconds is None else seconds)
        while True:
            if self.stop():
                raise BatchStopped("stopped while waiting for a message batch")
            left = until - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.2))

    def refused(self, e: anthropic.AuthenticationError) -> AuthenticationFailed:
        """The error that ends the run when the endpoint refuses our credentials."""
        return AuthenticationFailed(f"{self.endpoint.base_url or 'Anthropic API'}: {e}")

    def fail(
        self,
        calls: dict[str, BatchCall],
        out: dict[str, CallResult],
        error: str,
        sent: int,
        attempt: str | None,
    ) -> None:
        """Store the calls as failed; clear their started record under `attempt` (None: keep
        it, for a batch that may exist and be paid)."""
        for key, call in calls.items():
            out[key] = CallResult(key, error=error, attempts=sent)
            self.ledger.store(ledger_entry(call, out[key], 0.0), attempt)


def request(call: BatchCall) -> dict[str, Any]:
    """The Messages request, as `LLMClient.call` builds it. Sampling parameters are plain fields:
    a batch request's params are the request body itself."""
    out: dict[str, Any] = {
        "model": call.model,
        "messages": call.messages,
        **without_unset(call.params),
    }
    if call.system:
        out["system"] = call.system
    if call.tools:
        out["tools"] = call.tools
    return out


def ledger_entry(call: BatchCall, result: CallResult, latency_s: float) -> LedgerEntry:
    return LedgerEntry(result, call.spec, call.model, call.params, request(call), latency_s)


def status(batch: Any) -> BatchStatus:
    """A MessageBatch (as listed, retrieved or created) as `BatchStatus`."""
    return BatchStatus(batch.id, batch.processing_status, batch.request_counts.model_dump())
