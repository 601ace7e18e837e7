"""Waiting on a subject's message batches and storing their results in the ledger.

The batches of one intent are waited on together: a look-up after a lost creation reply adopts
every recent batch of the right size (`agents.batch_create`), so the results decide which is
ours. They are stored only under the keys we asked for; a batch found by look-up that carries
none of them is marked `foreign` (and reported as such to `observe`); a call found in no batch of
its intent is an error, "batch result missing" (retryable, as "batch expired" is). A wrong
candidate costs a wait for someone else's batch, never a wrong answer.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import anthropic
from anthropic.types.messages import MessageBatch

from agents.batch_calls import BATCH_PRICE, BatchCall, Batching, ledger_entry, status
from agents.batch_state import BatchEntry
from agents.client import CallResult, message_result


class Collector:
    """Waits on the batches on file and stores their results, for one runner."""

    def __init__(self, on: Batching):
        self.on = on

    def groups(self) -> list[list[BatchEntry]]:
        """The batches on file to wait on, by intent (a look-up may have adopted several)."""
        groups: dict[str, list[BatchEntry]] = {}
        for e in self.on.state.load():
            if e.status == "in_progress":
                groups.setdefault(e.intent or e.id or "", []).append(e)
        return list(groups.values())

    async def collect(
        self, group: list[BatchEntry], pending: dict[str, BatchCall], *, created: bool
    ) -> dict[str, CallResult]:
        """Wait for the batches of one intent to end, then store every result of ours in the
        ledger; a call of theirs in none of them is failed. `created`: the group was created
        by this runner just now (its first poll is no resumption)."""
        on = self.on
        if not group:
            return {}
        calls = {k: pending[k] for k in group[0].calls if k in pending}
        if not calls:  # answered meanwhile (e.g. by an online pass): nothing to wait for
            for entry in group:
                on.state.mark(entry, "superseded")
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
                now = status(batch)
                fresh = created and entry.via == "create"
                first = entry.id not in seen
                seen.add(entry.id or "")
                on.observe("resumed" if first and not fresh else "polled", now)
                if batch.processing_status != "ended":
                    continue
                waiting.remove(entry)
                ours = await self._results(batch, entry)
                if not ours and entry.via == "look-up":
                    on.state.mark(entry, "foreign")
                    on.observe("foreign", now)
                    continue
                for key, result, latency in ours:
                    if key in calls and (key not in found or found[key][0].type != "succeeded"):
                        found[key] = (result, latency)
                on.state.mark(entry, "collected")
                on.observe("ended", now)
            if all(k in found and found[k][0].type == "succeeded" for k in calls):
                for entry in waiting:  # the rest cannot improve on these answers
                    on.state.mark(entry, "superseded")
                break
            if waiting:
                await on.sleep()
        sent, attempt = group[0].posts - group[0].counted, group[0].intent
        out: dict[str, CallResult] = {}
        for key, (result, latency) in found.items():
            hit = on.ledger.lookup(key)  # answered meanwhile: keep that answer
            out[key] = hit or self._store(key, calls[key], result, latency, sent, attempt)
        missing = {k: c for k, c in calls.items() if k not in out}
        gone = len(lost) == len(group)
        error = f"batch {', '.join(lost)} not found" if gone else "batch result missing"
        on.fail(missing, out, error, sent, attempt)
        return out

    async def _retrieve(self, entry: BatchEntry) -> MessageBatch | Literal["lost"] | None:
        """The batch as the API sees it now; "lost" when it no longer knows it; None when it
        could not say (the SDK retried already; the batch runs on, so ask again later)."""
        try:
            return await self.on.sdk.messages.batches.retrieve(entry.id or "")
        except anthropic.AuthenticationError as e:
            raise self.on.refused(e) from e
        except anthropic.NotFoundError:
            self.on.state.mark(entry, "lost")
            return "lost"
        except (anthropic.APIConnectionError, anthropic.InternalServerError):
            return None

    async def _results(
        self, batch: MessageBatch, entry: BatchEntry
    ) -> list[tuple[str, Any, float]]:
        """(key, result, latency) for each result of an ended batch under a key of `entry`."""
        lines = [r async for r in await self.on.sdk.messages.batches.results(batch.id)]
        latency = (
            (batch.ended_at - batch.created_at).total_seconds()
            if batch.ended_at and batch.created_at
            else 0.0
        )
        return [(r.custom_id, r.result, latency) for r in lines if r.custom_id in entry.calls]

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
            out = message_result(
                key,
                call.model,
                result.message,
                local=self.on.endpoint.local,
                price_factor=BATCH_PRICE,
            )
        elif result.type == "errored":
            err = result.error.error
            out = CallResult(key, error=f"batch errored: {err.type}: {err.message}")
        else:  # expired, canceled: never processed
            out = CallResult(key, error=f"batch {result.type}")
        out = replace(out, attempts=sent)
        self.on.ledger.store(ledger_entry(call, out, latency_s), attempt)
        return out
