"""Creating a subject's message batch, never twice blindly: a batch that runs is billed, and
batch creation takes no idempotency key.

1. Before the creation request, the intent is written to the subject's state file (see
   `agents.batch_state`): status `creating`, the ledger keys it carries, the number of requests,
   the sha256 of their JSON, and the UTC time before the request. Its calls are recorded as
   started in the ledger under the intent's id.
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
   created.

The look-up cannot tell batches of one size apart (the API shows a batch's requests only in its
results), so it adopts every candidate and lets the results decide (`agents.batch_collect`). What
it cannot catch: a batch the API creates only after the look-up has listed (a slow creation
behind a timeout) is not found, and the creation is sent again.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
from anthropic.types.messages import MessageBatch

from agents.batch_calls import BATCH_PRICE, BatchCall, Batching, request, status
from agents.batch_state import BatchEntry
from agents.client import AuthenticationFailed, CallResult, Started, error_message
from memory import utc_stamp

STAMP = "%Y-%m-%dT%H:%M:%SZ"
"""`utc_stamp`'s format."""

MAYBE_CREATED = frozenset({408, 409})
"""Besides 5xx (529 included): statuses after which the batch may exist all the same."""

UNRESOLVED = "batch creation unresolved"
"""The error of calls whose batch may exist but could not be looked up: retryable by its wording
(`agents.client.retryable`), so the caller's next pass (or a resume) looks it up again, adopts
the batch if it is there and creates one only if it is not."""


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


class Creator:
    """Creates batches and resolves the intents left at `creating`, for one runner.

    `backoff_s` is the first pause before a creation is sent again (doubling each time, unless
    the server says how long to wait); `skew_s` how far before our clock's time of the intent a
    look-up searches, for the API's clock may differ from ours."""

    def __init__(self, on: Batching, *, backoff_s: float, skew_s: float):
        self.on = on
        self.backoff_s = backoff_s
        self.skew_s = skew_s
        self._once = on.sdk.with_options(max_retries=0)  # the same connection pool and hooks

    async def create(
        self, todo: dict[str, BatchCall], results: dict[str, CallResult]
    ) -> list[BatchEntry]:
        """The batch (or, after a lost reply, the candidates) for `todo`, on file as
        `in_progress`; none when no batch could be created (the calls are then failed)."""
        on = self.on
        # the ledger key is the custom_id: 64 hex characters, the API's limit and alphabet
        requests = [{"custom_id": k, "params": request(c)} for k, c in todo.items()]
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
        factor = 0.0 if on.endpoint.local else BATCH_PRICE
        started = [Started.of(k, c.spec, request(c), price_factor=factor) for k, c in todo.items()]
        on.ledger.begin(intent.intent, started)
        failed = _Failed("no creation request sent", maybe_created=False, retry=True)
        for attempt in range(on.endpoint.max_retries + 1):
            if attempt:
                await on.sleep(failed.delay or self.backoff_s * 2 ** (attempt - 1))
            sending = intent.model_copy(update={"posts": intent.posts + 1})
            on.state.put(sending, replacing=intent)  # on file before the request goes out
            intent = sending
            try:
                got = await self._post(requests)
            except AuthenticationFailed:
                if intent.posts == 1:  # refused before anything was made: nothing to look up
                    on.state.mark(intent, "not_created")
                    on.ledger.unsent(intent.intent)
                raise
            if not isinstance(got, _Failed):
                update = {"id": got.id, "status": "in_progress", "submitted": utc_stamp()}
                entry = intent.model_copy(update=update)
                on.state.put(entry, replacing=intent)
                on.observe("submitted", status(got))
                return [entry]
            failed = got
            if failed.maybe_created:
                try:
                    if found := await self._look_up(intent):
                        return found
                except _LookUpFailed as e:  # it may exist: sending again could make two
                    error = f"{UNRESOLVED}: {failed.error}; the look-up for the batch failed: {e}"
                    # still started: the batch may run (and be paid) until a look-up finds it
                    on.fail(todo, results, error, intent.posts, attempt=None)
                    on.state.put(intent.model_copy(update={"counted": intent.posts}))
                    return []
            if not failed.retry:
                break
        on.state.mark(intent, "not_created")
        on.fail(todo, results, failed.error, intent.posts, attempt=intent.intent)
        return []

    async def resolve_intents(
        self, pending: dict[str, BatchCall], results: dict[str, CallResult]
    ) -> None:
        """Look for the batches of intents an earlier process left at `creating`."""
        on = self.on
        for intent in on.state.load():
            if intent.status != "creating":
                continue
            try:
                if not await self._look_up(intent):
                    on.state.mark(intent, "not_created")
                    on.ledger.unsent(intent.intent)  # no batch: nothing was paid
            except _LookUpFailed as e:  # creating the calls again could make a second batch
                stuck = {k: c for k, c in pending.items() if k in intent.calls}
                error = f"{UNRESOLVED}: the look-up failed: {e}"
                sent = intent.posts - intent.counted
                on.fail(stuck, results, error, sent, attempt=None)
                on.state.put(intent.model_copy(update={"counted": intent.posts}))

    async def _post(self, requests: list[dict[str, Any]]) -> MessageBatch | _Failed:
        """One creation request, with no retry by the SDK."""
        try:
            return await self._once.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        except anthropic.AuthenticationError as e:
            raise self.on.refused(e) from e
        except anthropic.APIStatusError as e:
            code, delay = e.status_code, _retry_after(e.response.headers)
            error = f"HTTP {code}: {error_message(e)}"
            if code == 429:  # refused before anything was created
                return _Failed(error, maybe_created=False, retry=True, delay=delay)
            maybe = code >= 500 or code in MAYBE_CREATED
            return _Failed(error, maybe_created=maybe, retry=maybe, delay=delay)
        except anthropic.APIConnectionError as e:  # APITimeoutError included
            return _Failed(f"{type(e).__name__}: {e}", maybe_created=True, retry=True)

    async def _look_up(self, intent: BatchEntry) -> list[BatchEntry]:
        """The batches that may be this intent's, adopted on file in its place: created since
        its time (less `skew_s`), as many requests, known to no state file in the folder."""
        assert intent.intended is not None
        since = datetime.strptime(intent.intended, STAMP).replace(tzinfo=UTC)
        since -= timedelta(seconds=self.skew_s)
        taken = self.on.state.taken()
        found = []
        try:
            async for batch in self.on.sdk.messages.batches.list(limit=100):  # newest first
                if batch.created_at < since:
                    break
                if batch.id not in taken and status(batch).total == intent.requests:
                    found.append(batch.id)
        except anthropic.AuthenticationError as e:
            raise self.on.refused(e) from e
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
            self.on.state.replace(intent, adopted)
        return adopted


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's retry-after (milliseconds or seconds), capped at a minute."""
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return min(float(headers[header]) * scale, 60.0)
        except (KeyError, ValueError):
            continue
    return None
