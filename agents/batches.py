"""Subject calls through Anthropic's Message Batches API: half the price, results within 24 hours.

Results go into the same call ledger, under the same keys, as `LLMClient.call` would write them,
so a stage sees no difference between batched and online calls, and turning batching on or off
never changes a key. The batch id lives in a small JSON file (`state_path`), written before we
wait on the batch: a process killed while the batch is in flight finds it there on resume and
collects that batch rather than submitting (and paying for) the same calls again.

A call's `attempts` in the ledger is the number of batch-creation requests that carried it (the
SDK's retries included, counted as `LLMClient` counts them); a batch found in flight on resume
counts once.

    runner = BatchRunner(endpoint, ledger, protocol_sha, run_dir / "artifacts/batches/s.json")
    results = await runner.run([BatchCall(CallSpec("collect", "item-1", "subject"), ...)])
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import anthropic

from agents.client import (
    AuthenticationFailed,
    CallResult,
    CallSpec,
    Endpoint,
    Ledger,
    LedgerEntry,
    call_key,
    count_requests,
    error_message,
    message_result,
    sdk_client,
    without_unset,
)
from memory import utc_stamp, write_atomic

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


Event = Literal["submitted", "resumed", "polled", "ended"]
Observer = Callable[[Event, BatchStatus], None]


class BatchStopped(Exception):
    """`stop()` turned true while a batch was in flight; its id is kept for the next run."""


class BatchRunner:
    """Makes calls as message batches on one endpoint. Create it inside the event loop using it."""

    def __init__(
        self,
        endpoint: Endpoint,
        ledger: Ledger,
        protocol_sha: str,
        state_path: Path,
        *,
        poll_s: float = 30.0,
        stop: Callable[[], bool] | None = None,
        observe: Observer | None = None,
    ):
        self.endpoint = endpoint
        self.ledger = ledger
        self.protocol_sha = protocol_sha
        self.state_path = Path(state_path)
        self.poll_s = poll_s
        self.stop = stop or (lambda: False)
        self.observe = observe or (lambda event, status: None)
        self._sdk = sdk_client(endpoint)

    def key(self, call: BatchCall) -> str:
        """The ledger key, exactly as `LLMClient.call` computes it."""
        params = {**call.params, **(call.key_extra or {})}
        return call_key(self.protocol_sha, call.spec, call.model, params)

    async def run(self, calls: list[BatchCall]) -> list[CallResult]:
        """One result per call: from the ledger, from a batch left in flight by an earlier
        process, or from a new batch of the rest. Failed requests come back as errors (and are
        in the ledger as such), to be tried again on the next pass, as online failures are."""
        by_key = {self.key(c): c for c in calls}
        results: dict[str, CallResult] = {}
        for key in by_key:
            if (hit := self.ledger.lookup(key)) is not None:
                results[key] = hit
        pending = {k: c for k, c in by_key.items() if k not in results}
        try:
            for entry in self._load():
                if entry["status"] != "in_progress":
                    continue
                covered = {k: pending[k] for k in entry["calls"] if k in pending}
                if covered:
                    results.update(await self._finish(entry["id"], covered, sent=1))
                else:  # answered meanwhile (e.g. by an online pass): nothing to wait for
                    self._mark(entry["id"], "superseded")
            todo = {k: c for k, c in pending.items() if k not in results}
            if todo:
                submitted = await self._submit(todo, results)
                if submitted is not None:
                    batch_id, sent = submitted
                    results.update(await self._finish(batch_id, todo, sent=sent, resumed=False))
        finally:
            await self._sdk.close()
        return [results[self.key(c)] for c in calls]

    # the batch's life --------------------------------------------------------------------
    async def _submit(
        self, todo: dict[str, BatchCall], results: dict[str, CallResult]
    ) -> tuple[str, int] | None:
        """(batch id, creation requests sent), or None when the batch could not be created."""
        # the ledger key is the custom_id: 64 hex characters, the API's limit and alphabet
        requests = [{"custom_id": k, "params": _request(c)} for k, c in todo.items()]
        error, batch = "", None
        with count_requests() as sent:
            try:
                batch = await self._sdk.messages.batches.create(requests=requests)  # type: ignore[arg-type]
            except anthropic.AuthenticationError as e:
                where = self.endpoint.base_url or "Anthropic API"
                raise AuthenticationFailed(f"{where}: {e}") from e
            except anthropic.APIStatusError as e:
                error = f"HTTP {e.status_code}: {error_message(e)}"
            except (anthropic.APIConnectionError, anthropic.APITimeoutError) as e:
                error = f"{type(e).__name__}: {e}"
        if batch is None:
            self._fail(todo, results, error, sent.requests)
            return None
        entries = [e for e in self._load() if e["id"] != batch.id]
        calls = {k: c.spec.item for k, c in todo.items()}
        entries.append(
            {"id": batch.id, "submitted": utc_stamp(), "status": "in_progress", "calls": calls}
        )
        self._save(entries)
        self.observe("submitted", _status(batch))
        return batch.id, sent.requests

    async def _finish(
        self, batch_id: str, calls: dict[str, BatchCall], *, sent: int, resumed: bool = True
    ) -> dict[str, CallResult]:
        """Wait for the batch to end, then store every result in the ledger."""
        first = True
        while True:
            try:
                batch = await self._sdk.messages.batches.retrieve(batch_id)
            except anthropic.AuthenticationError as e:
                raise AuthenticationFailed(f"{self.endpoint.base_url or 'API'}: {e}") from e
            except anthropic.NotFoundError:
                out: dict[str, CallResult] = {}
                self._fail(calls, out, f"batch {batch_id} not found", sent)
                self._mark(batch_id, "lost")
                return out
            except (anthropic.APIConnectionError, anthropic.InternalServerError):
                batch = None  # the SDK retried already; the batch runs on, so ask again later
            if batch is not None:
                status = _status(batch)
                self.observe("resumed" if first and resumed else "polled", status)
                first = False
                if batch.processing_status == "ended":
                    break
            await self._sleep()
        lines = [r async for r in await self._sdk.messages.batches.results(batch_id)]
        latency = (
            (batch.ended_at - batch.created_at).total_seconds()
            if batch.ended_at and batch.created_at
            else 0.0
        )
        out = {}
        for line in lines:
            call = calls.get(line.custom_id)
            if call is None or self.ledger.lookup(line.custom_id) is not None:
                continue  # not asked for this time, or already answered
            stored = self._store(line.custom_id, call, line.result, latency, sent)
            out[line.custom_id] = stored
        missing = {k: c for k, c in calls.items() if k not in out}
        self._fail(missing, out, "batch result missing", sent)
        self._mark(batch_id, "collected")
        self.observe("ended", status)
        return out

    async def _sleep(self) -> None:
        """`poll_s`, in short steps so that a stop request is seen promptly."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self.poll_s
        while True:
            if self.stop():
                raise BatchStopped("stopped while waiting for a message batch")
            left = until - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.2))

    # results -----------------------------------------------------------------------------
    def _store(
        self, key: str, call: BatchCall, result: Any, latency_s: float, sent: int
    ) -> CallResult:
        if result.type == "succeeded":
            out = self._succeeded(key, call.model, result.message)
        elif result.type == "errored":
            err = result.error.error
            out = CallResult(key, error=f"batch errored: {err.type}: {err.message}")
        else:  # expired, canceled: never processed
            out = CallResult(key, error=f"batch {result.type}")
        out = replace(out, attempts=sent)
        self.ledger.store(_entry(call, out, latency_s))
        return out

    def _succeeded(self, key: str, model: str, msg: anthropic.types.Message) -> CallResult:
        return message_result(key, model, msg, local=self.endpoint.local, price_factor=BATCH_PRICE)

    def _fail(
        self, calls: dict[str, BatchCall], out: dict[str, CallResult], error: str, sent: int
    ) -> None:
        for key, call in calls.items():
            out[key] = CallResult(key, error=error, attempts=sent)
            self.ledger.store(_entry(call, out[key], 0.0))

    # the state file ----------------------------------------------------------------------
    def _load(self) -> list[dict[str, Any]]:
        if not self.state_path.exists():
            return []
        return json.loads(self.state_path.read_text())["batches"]

    def _save(self, entries: list[dict[str, Any]]) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.state_path, json.dumps({"batches": entries}, indent=2) + "\n")

    def _mark(self, batch_id: str, status: str) -> None:
        entries = self._load()
        for e in entries:
            if e["id"] == batch_id:
                e["status"], e["updated"] = status, utc_stamp()
        self._save(entries)


def _request(call: BatchCall) -> dict[str, Any]:
    """The Messages request, as `LLMClient.call` builds it. Sampling parameters are plain fields:
    a batch request's params are the request body itself."""
    request: dict[str, Any] = {
        "model": call.model,
        "messages": call.messages,
        **without_unset(call.params),
    }
    if call.system:
        request["system"] = call.system
    return request


def _entry(call: BatchCall, result: CallResult, latency_s: float) -> LedgerEntry:
    return LedgerEntry(result, call.spec, call.model, call.params, _request(call), latency_s)


def _status(batch: Any) -> BatchStatus:
    return BatchStatus(batch.id, batch.processing_status, batch.request_counts.model_dump())
