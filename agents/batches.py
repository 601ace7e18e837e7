"""Subject calls through Anthropic's Message Batches API: half the price, results within 24 hours.

Results go into the same call ledger, under the same keys, as `LLMClient.call` would write them,
so a stage sees no difference between batched and online calls, and turning batching on or off
never changes a key. A `run` is one pass: a call that fails (an errored, expired or missing
result, a batch that could not be created or whose creation is unresolved) comes back as an error
and is in the ledger as such; trying it again is the caller's next pass, as for online calls.

A pass first looks up the batches of intents an earlier process left at `creating` (created, or
not, with no reply seen), then waits on the batches on file (`in_progress`: never submitted
again), then creates one batch of the calls still to make. A batch that runs is billed and batch
creation takes no idempotency key, so the intent is on file before the creation request and a
lost reply is followed by a look-up, never by a blind second creation (`agents.batch_create`).
Waiting and storing the results is `agents.batch_collect`; the state file, `agents.batch_state`.

A call's `attempts` in the ledger is the number of creation requests that carried it (one per
request: the SDK does not retry them); a batch found in flight on resume adds none.

    runner = BatchRunner(endpoint, ledger, protocol_sha, run_dir / "artifacts/batches/s.json")
    results = await runner.run([BatchCall(CallSpec("collect", "item-1", "subject"), ...)])
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agents.batch_calls import (
    BATCH_PRICE,
    BatchCall,
    Batching,
    BatchStatus,
    BatchStopped,
    Event,
    Observer,
)
from agents.batch_collect import Collector
from agents.batch_create import Creator
from agents.batch_state import BatchState
from agents.client import CallResult, Endpoint, Ledger, call_key, sdk_client

__all__ = [
    "BATCH_PRICE",
    "BatchCall",
    "BatchRunner",
    "BatchStatus",
    "BatchStopped",
    "Event",
    "Observer",
]


class BatchRunner:
    """Makes calls as message batches on one endpoint. Create it inside the event loop using it.

    `state_path` is the subject's state file (its folder holds the other subjects' files);
    `backoff_s` is the first pause before a creation is sent again and `skew_s` how far before
    the intent's time a look-up searches (see `agents.batch_create.Creator`)."""

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
        self.protocol_sha = protocol_sha
        self.ledger = ledger
        self._on = Batching(
            endpoint=endpoint,
            ledger=ledger,
            state=BatchState(Path(state_path)),
            sdk=sdk_client(endpoint),
            observe=observe or (lambda event, status: None),
            stop=stop or (lambda: False),
            poll_s=poll_s,
        )
        self._creator = Creator(self._on, backoff_s=backoff_s, skew_s=skew_s)
        self._collector = Collector(self._on)

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
            await self._creator.resolve_intents(pending, results)
            for group in self._collector.groups():
                todo = {k: c for k, c in pending.items() if k not in results}
                results.update(await self._collector.collect(group, todo, created=False))
            todo = {k: c for k, c in pending.items() if k not in results}
            if todo:
                group = await self._creator.create(todo, results)
                results.update(await self._collector.collect(group, todo, created=True))
        finally:
            await self._on.sdk.close()
        return [results[self.key(c)] for c in calls]
