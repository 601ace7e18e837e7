"""What a call is, as the ledger keeps it: who makes it (`CallSpec`), its result (`CallResult`),
the ledger's entry and started record, the `Ledger` protocol the orchestrator implements, and
the key a call is kept under (`call_key`). Every client (agents/client.py, agents/openai_client.py,
the message batches) writes through these."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol


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
