"""Subject calls through Anthropic's Message Batches API: half the price, results within 24 hours.

Results go into the same call ledger, under the same keys, as `LLMClient.call` would write them,
so a stage sees no difference between batched and online calls, and turning batching on or off
never changes a key. A `run` is one pass: a call that fails (an errored, expired or missing
result, a batch that could not be created) comes back as an error and is in the ledger as such;
trying it again is the caller's next pass, as for online calls.

A batch that runs is billed, and batch creation takes no idempotency key, so a creation is never
sent twice blindly:

1. Before the creation request, the intent is written to the subject's state file (`state_path`,
   see `agents.batch_state`): status `creating`, the ledger keys it carries, the number of
   requests, the sha256 of their JSON, and the UTC time before the request.
2. The request goes out with the SDK's retries off: they would re-send a creation whose reply
   was merely lost. A definite refusal (400, 401, 403, 404, 413, 422) fails the calls; a 429 is
   sent again after its delay. After a failure that may have created the batch (connection lost,
   timeout, 408, 409, 5xx, 529) we look for it first: the batches listed newest first, back to
   the intent's time less `skew_s`, that hold as many requests as ours and that no state file in
   the folder knows of (the other subjects' files lie beside this one). Those found are adopted;
   only if none is found is the creation sent again (`endpoint.max_retries` times at most, after
   `backoff_s` doubling, or the server's retry-after). If the batches cannot be listed, the
   intent stays `creating` and its calls fail with "batch creation unresolved: ...", an error
   `agents.client.retryable` lets through, so the caller's next pass (or a resume) comes to 3.
3. A state file left at `creating` (a process killed between the request and its reply, or a
   look-up that failed) is looked up the same way by the next runner, before it creates
   anything; if the look-up fails again, its calls fail again as unresolved and nothing is
   created. A batch id on file (`in_progress`) is waited on, not submitted again.

The look-up cannot tell batches of one size apart (the API shows a batch's requests only in its
results), so it adopts every candidate and lets the results decide: results are stored only under
the keys we asked for, a candidate that carries none of them is marked `foreign` (and reported as
such to `observe`), and a call found in no adopted batch is an error, "batch result missing". A
wrong candidate costs a wait for someone else's batch, never a wrong answer. What it cannot
catch: a batch the API creates only after the look-up has listed (a slow creation behind a
timeout) is not found, and the creation is sent again.

A call's `attempts` in the ledger is the number of creation requests that carried it (one per
request: the SDK does not retry them); a batch found in flight on resume adds none.

    runner = BatchRunner(endpoint, ledger, protocol_sha, run_dir / "artifacts/batches/s.json")
    results = await runner.run([BatchCall(CallSpec("collect", "item-1", "subject"), ...)])
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import anthropic
from anthropic.types.messages import MessageBatch

from agents.batch_state import BatchEntry, BatchState
from agents.client import (
    AuthenticationFailed,
    CallResult,
    CallSpec,
    Endpoint,
    Ledger,
    LedgerEntry,
    Started,
    call_key,
    error_message,
    message_result,
    sdk_client,
    without_unset,
)
from memory import utc_stamp

STAMP = "%Y-%m-%dT%H:%M:%SZ"
"""`utc_stamp`'s format."""

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


Event = Literal["submitted", "resumed", "polled", "ended", "foreign"]
"""`foreign`: a batch found by look-up ended carrying none of our calls (someone else's)."""
Observer = Callable[[Event, BatchStatus], None]

MAYBE_CREATED = frozenset({408, 409})
"""Besides 5xx (529 included): statuses after which the batch may exist all the same."""


UNRESOLVED = "batch creation unresolved"
"""The error of calls whose batch may exist but could not be looked up: retryable by its wording
(`agents.client.retryable`), so the caller's next pass (or a resume) looks it up again, adopts
the batch if it is there and creates one only if it is not."""


class BatchStopped(Exception):
    """`stop()` turned true while a batch was in flight or about to be created; the state file
    keeps it for the next run."""


class _LookUpFailed(Exception):
    """The recent batches could not be listed: whether ours exists is unknown."""


@dataclass(frozen=True)
class _Failed:
    """A creation request that brought no batch back."""

    error: str
    maybe_created: bool
    """The API may have created the batch all the same: look for it before sending again."""
    retry: bool
    delay: float | None = None
    """The server's retry-after, when it gave one."""


class BatchRunner:
    """Makes calls as message batches on one endpoint. Create it inside the event loop using it.

    `backoff_s` is the first pause before a creation is sent again (doubling each time, unless
    the server says how long to wait); `skew_s` how far before our clock's time of the intent a
    look-up searches, for the API's clock may differ from ours."""

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
        backoff_s: float = 0.5,
        skew_s: float = 300.0,
    ):
        self.endpoint = endpoint
        self.ledger = ledger
        self.protocol_sha = protocol_sha
        self.state_path = Path(state_path)
        self.state = BatchState(self.state_path)
        self.poll_s = poll_s
        self.stop = stop or (lambda: False)
        self.observe = observe or (lambda event, status: None)
        self.backoff_s = backoff_s
        self.skew_s = skew_s
        self._sdk = sdk_client(endpoint)
        self._once = self._sdk.with_options(max_retries=0)  # the same connection pool and hooks

    def key(self, call: BatchCall) -> str:
        """The ledger key, exactly as `LLMClient.call` computes it."""
        params = {**call.params, **(call.key_extra or {})}
        return call_key(self.protocol_sha, call.spec, call.model, params)

    async def run(self, calls: list[BatchCall]) -> list[CallResult]:
        """One result per call: from the ledger, from batches an earlier process left on file
        (in flight, or created without a reply), or from one new batch of the rest. Failed
        requests come back as errors (and are in the ledger as such)."""
        by_key = {self.key(c): c for c in calls}
        results: dict[str, CallResult] = {}
        for key in by_key:
            if (hit := self.ledger.lookup(key)) is not None:
                results[key] = hit
        pending = {k: c for k, c in by_key.items() if k not in results}
        try:
            await self._resolve_intents(pending, results)
            for group in self._groups():
                todo = {k: c for k, c in pending.items() if k not in results}
                results.update(await self._collect(group, todo, created=False))
            todo = {k: c for k, c in pending.items() if k not in results}
            if todo:
                group = await self._create(todo, results)
                results.update(await self._collect(group, todo, created=True))
        finally:
            await self._sdk.close()
        return [results[self.key(c)] for c in calls]

    # creation ----------------------------------------------------------------------------
    async def _create(
        self, todo: dict[str, BatchCall], results: dict[str, CallResult]
    ) -> list[BatchEntry]:
        """The batch (or, after a lost reply, the candidates) for `todo`, on file as
        `in_progress`; none when no batch could be created (the calls are then failed)."""
        # the ledger key is the custom_id: 64 hex characters, the API's limit and alphabet
        requests = [{"custom_id": k, "params": _request(c)} for k, c in todo.items()]
        blob = json.dumps(requests, sort_keys=True, separators=(",", ":")).encode()
        intent = BatchEntry(
            status="creating",
            calls={k: c.spec.item for k, c in todo.items()},
            intent=uuid.uuid4().hex,
            requests_sha256=hashlib.sha256(blob).hexdigest(),
            requests=len(requests),
            intended=utc_stamp(),
            posts=0,
        )
        # started before the first request, under the intent's id: a kill from here on leaves
        # them possibly paid, unless a resume collects the batch (stored under the same id) or
        # finds none was made
        factor = 0.0 if self.endpoint.local else BATCH_PRICE
        started = [Started.of(k, c.spec, _request(c), price_factor=factor) for k, c in todo.items()]
        self.ledger.begin(intent.intent or "", started)
        failed = _Failed("no creation request sent", maybe_created=False, retry=True)
        for attempt in range(self.endpoint.max_retries + 1):
            if attempt:
                await self._sleep(failed.delay or self.backoff_s * 2 ** (attempt - 1))
            sending = intent.model_copy(update={"posts": intent.posts + 1})
            self.state.put(sending, replacing=intent)  # on file before the request goes out
            intent = sending
            try:
                got = await self._post(requests)
            except AuthenticationFailed:
                if intent.posts == 1:  # refused before anything was made: nothing to look up
                    self.state.mark(intent, "not_created")
                    self.ledger.unsent(intent.intent or "")
                raise
            if not isinstance(got, _Failed):
                update = {"id": got.id, "status": "in_progress", "submitted": utc_stamp()}
                entry = intent.model_copy(update=update)
                self.state.put(entry, replacing=intent)
                self.observe("submitted", _status(got))
                return [entry]
            failed = got
            if failed.maybe_created:
                try:
                    if found := await self._look_up(intent):
                        return found
                except _LookUpFailed as e:  # it may exist: sending again could make two
                    error = f"{UNRESOLVED}: {failed.error}; the look-up for the batch failed: {e}"
                    # still started: the batch may run (and be paid) until a look-up finds it
                    self._fail(todo, results, error, intent.posts, attempt=None)
                    self.state.put(intent.model_copy(update={"counted": intent.posts}))
                    return []
            if not failed.retry:
                break
        self.state.mark(intent, "not_created")
        self._fail(todo, results, failed.error, intent.posts, attempt=intent.intent)
        return []

    async def _post(self, requests: list[dict[str, Any]]) -> MessageBatch | _Failed:
        """One creation request, with no retry by the SDK."""
        try:
            return await self._once.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        except anthropic.AuthenticationError as e:
            raise AuthenticationFailed(f"{self.endpoint.base_url or 'Anthropic API'}: {e}") from e
        except anthropic.APIStatusError as e:
            code, delay = e.status_code, _retry_after(e.response.headers)
            error = f"HTTP {code}: {error_message(e)}"
            if code == 429:  # refused before anything was created
                return _Failed(error, maybe_created=False, retry=True, delay=delay)
            maybe = code >= 500 or code in MAYBE_CREATED
            return _Failed(error, maybe_created=maybe, retry=maybe, delay=delay)
        except anthropic.APIConnectionError as e:  # APITimeoutError included
            return _Failed(f"{type(e).__name__}: {e}", maybe_created=True, retry=True)

    async def _resolve_intents(
        self, pending: dict[str, BatchCall], results: dict[str, CallResult]
    ) -> None:
        """Look for the batches of intents an earlier process left at `creating`."""
        for intent in self.state.load():
            if intent.status != "creating":
                continue
            try:
                if not await self._look_up(intent):
                    self.state.mark(intent, "not_created")
                    self.ledger.unsent(intent.intent or "")  # no batch: nothing was paid
            except _LookUpFailed as e:  # creating the calls again could make a second batch
                stuck = {k: c for k, c in pending.items() if k in intent.calls}
                error = f"{UNRESOLVED}: the look-up failed: {e}"
                sent = intent.posts - intent.counted
                self._fail(stuck, results, error, sent, attempt=None)
                self.state.put(intent.model_copy(update={"counted": intent.posts}))

    async def _look_up(self, intent: BatchEntry) -> list[BatchEntry]:
        """The batches that may be this intent's, adopted on file in its place: created since
        its time (less `skew_s`), as many requests, known to no state file in the folder."""
        assert intent.intended is not None
        since = datetime.strptime(intent.intended, STAMP).replace(tzinfo=UTC)
        since -= timedelta(seconds=self.skew_s)
        taken = self.state.taken()
        found = []
        try:
            async for batch in self._sdk.messages.batches.list(limit=100):  # newest first
                if batch.created_at < since:
                    break
                if batch.id not in taken and _status(batch).total == intent.requests:
                    found.append(batch.id)
        except anthropic.AuthenticationError as e:
            raise AuthenticationFailed(f"{self.endpoint.base_url or 'Anthropic API'}: {e}") from e
        except anthropic.APIError as e:
            raise _LookUpFailed(f"{type(e).__name__}: {e}") from e
        now = utc_stamp()
        adopted = [
            intent.model_copy(
                update={"id": i, "status": "in_progress", "via": "look-up", "submitted": now}
            )
            for i in found
        ]
        if adopted:
            self.state.replace(intent, adopted)
        return adopted

    # waiting and collecting --------------------------------------------------------------
    def _groups(self) -> list[list[BatchEntry]]:
        """The batches on file to wait on, by intent (a look-up may have adopted several)."""
        groups: dict[str, list[BatchEntry]] = {}
        for e in self.state.load():
            if e.status == "in_progress":
                groups.setdefault(e.intent or e.id or "", []).append(e)
        return list(groups.values())

    async def _collect(
        self, group: list[BatchEntry], pending: dict[str, BatchCall], *, created: bool
    ) -> dict[str, CallResult]:
        """Wait for the batches of one intent to end, then store every result of ours in the
        ledger; a call of theirs in none of them is failed."""
        if not group:
            return {}
        calls = {k: pending[k] for k in group[0].calls if k in pending}
        if not calls:  # answered meanwhile (e.g. by an online pass): nothing to wait for
            for entry in group:
                self.state.mark(entry, "superseded")
            return {}
        found: dict[str, tuple[Any, float]] = {}
        lost: list[str] = []
        waiting = list(group)
        seen: set[str] = set()
        while waiting:
            for entry in list(waiting):
                batch = await self._retrieve(entry)
                if batch is None:
                    continue
                if batch == "lost":
                    lost.append(entry.id or "")
                    waiting.remove(entry)
                    continue
                status = _status(batch)
                fresh = created and entry.via == "create"
                first = entry.id not in seen
                seen.add(entry.id or "")
                self.observe("resumed" if first and not fresh else "polled", status)
                if batch.processing_status != "ended":
                    continue
                waiting.remove(entry)
                ours = await self._results(batch, entry)
                if not ours and entry.via == "look-up":
                    self.state.mark(entry, "foreign")
                    self.observe("foreign", status)
                    continue
                for key, result, latency in ours:
                    if key in calls and (key not in found or found[key][0].type != "succeeded"):
                        found[key] = (result, latency)
                self.state.mark(entry, "collected")
                self.observe("ended", status)
            if all(k in found and found[k][0].type == "succeeded" for k in calls):
                for entry in waiting:  # the rest cannot improve on these answers
                    self.state.mark(entry, "superseded")
                break
            if waiting:
                await self._sleep()
        sent, attempt = group[0].posts - group[0].counted, group[0].intent
        out: dict[str, CallResult] = {}
        for key, (result, latency) in found.items():
            hit = self.ledger.lookup(key)  # answered meanwhile: keep that answer
            out[key] = hit or self._store(key, calls[key], result, latency, sent, attempt)
        missing = {k: c for k, c in calls.items() if k not in out}
        gone = len(lost) == len(group)
        error = f"batch {', '.join(lost)} not found" if gone else "batch result missing"
        self._fail(missing, out, error, sent, attempt)
        return out

    async def _retrieve(self, entry: BatchEntry) -> MessageBatch | Literal["lost"] | None:
        """The batch as the API sees it now; "lost" when it no longer knows it; None when it
        could not say (the SDK retried already; the batch runs on, so ask again later)."""
        try:
            return await self._sdk.messages.batches.retrieve(entry.id or "")
        except anthropic.AuthenticationError as e:
            raise AuthenticationFailed(f"{self.endpoint.base_url or 'API'}: {e}") from e
        except anthropic.NotFoundError:
            self.state.mark(entry, "lost")
            return "lost"
        except (anthropic.APIConnectionError, anthropic.InternalServerError):
            return None

    async def _results(
        self, batch: MessageBatch, entry: BatchEntry
    ) -> list[tuple[str, Any, float]]:
        """(key, result, latency) for each result of an ended batch under a key of `entry`."""
        lines = [r async for r in await self._sdk.messages.batches.results(batch.id)]
        latency = (
            (batch.ended_at - batch.created_at).total_seconds()
            if batch.ended_at and batch.created_at
            else 0.0
        )
        return [(r.custom_id, r.result, latency) for r in lines if r.custom_id in entry.calls]

    async def _sleep(self, seconds: float | None = None) -> None:
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

    # results -----------------------------------------------------------------------------
    def _store(
        self,
        key: str,
        call: BatchCall,
        result: Any,
        latency_s: float,
        sent: int,
        attempt: str | None,
    ) -> CallResult:
        if result.type == "succeeded":
            out = self._succeeded(key, call.model, result.message)
        elif result.type == "errored":
            err = result.error.error
            out = CallResult(key, error=f"batch errored: {err.type}: {err.message}")
        else:  # expired, canceled: never processed
            out = CallResult(key, error=f"batch {result.type}")
        out = replace(out, attempts=sent)
        self.ledger.store(_entry(call, out, latency_s), attempt)
        return out

    def _succeeded(self, key: str, model: str, msg: anthropic.types.Message) -> CallResult:
        return message_result(key, model, msg, local=self.endpoint.local, price_factor=BATCH_PRICE)

    def _fail(
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
            self.ledger.store(_entry(call, out[key], 0.0), attempt)


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


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's retry-after (milliseconds or seconds), capped at a minute."""
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return min(float(headers[header]) * scale, 60.0)
        except (KeyError, ValueError):
            continue
    return None
