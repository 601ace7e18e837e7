"""Dynamic batching of probe requests across clients.

Many agents ask for readouts of one or a few texts at a time. Requests queue here; the drain loop
takes the oldest waiting request and every other waiting request for the same probe with the same
parameters (or, for fused readouts, the same list of probes), up to `max_texts` texts, and
computes them as one batch in the model thread, where the length buckets apply to all of them
together. While a batch runs, new requests
wait, so under load batches grow by themselves; an idle worker waits only `window_s` for company.
A request whose client has gone (its `CancelFlag` set) is dropped before its batch runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from truesight.cancel import CancelFlag, ClientGone
from truesight.generate import Batcher
from truesight.probes.inputs import ProbeInput
from truesight.probes.readouts import Readouts
from truesight.probes.registry import Probe
from truesight.probes.runner import ProbeRunner
from truesight.probes.wire import ReadoutSpec
from truesight.wire import InvalidRequest


@dataclass
class QueueStats:
    """Counters for /health."""

    requests: int = 0
    batches: int = 0
    max_requests_merged: int = 0
    max_texts_merged: int = 0
    requests_cancelled: int = 0
    """Requests dropped before they ran because their client disconnected."""


Outcome = list[Any] | InvalidRequest
"""One request's results in order, or the InvalidRequest its own inputs caused."""


@dataclass
class _Waiting:
    key: tuple[str, str]
    """Requests with equal keys can be computed as one batch."""
    items: list[ProbeInput]
    run_many: Callable[[list[list[ProbeInput]]], list[Outcome]] = field(repr=False)
    future: asyncio.Future[list[Any]] = field(repr=False)
    cancel: CancelFlag | None = None


class ProbeQueue:
    """Merges concurrent requests with the same probe and parameters into one batch."""

    def __init__(
        self,
        runner: ProbeRunner,
        batcher: Batcher,
        *,
        max_texts: int = 64,
        window_s: float = 0.005,
        readouts: Readouts | None = None,
    ):
        self.runner, self.batcher, self.readouts = runner, batcher, readouts
        self.max_texts, self.window_s = max_texts, window_s
        self.stats = QueueStats()
        self._waiting: list[_Waiting] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def submit(
        self,
        probe: Probe,
        items: list[ProbeInput],
        params: dict[str, Any],
        cancel: CancelFlag | None = None,
    ) -> list[dict[str, Any]]:
        """Results for `items`, in order; raises the InvalidRequest its own inputs caused, and
        ClientGone when `cancel` was set before the request ran."""
        key = (probe.name, json.dumps(params, sort_keys=True))
        return await self._submit(
            key, items, partial(self.runner.run_many, probe, raw_params=params), cancel
        )

    async def submit_readouts(
        self,
        specs: list[ReadoutSpec],
        items: list[ProbeInput],
        cancel: CancelFlag | None = None,
    ) -> list[dict[str, Any]]:
        """Every probe of `specs` on each item (see `readouts`), one dict per item, in order."""
        if self.readouts is None:
            raise RuntimeError("this queue was built without fused readouts")
        listed = json.dumps([s.model_dump() for s in specs], sort_keys=True)
        return await self._submit(
            ("readouts", listed), items, partial(self.readouts.run_many, specs), cancel
        )

    async def _submit(
        self,
        key: tuple[str, str],
        items: list[ProbeInput],
        run_many: Callable[[list[list[ProbeInput]]], list[Outcome]],
        cancel: CancelFlag | None = None,
    ) -> list[Any]:
        if self._task is None:  # started lazily, inside the server's running loop
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._loop(), name="probe-queue")
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(key, items, run_many, future, cancel))
        self.stats.requests += 1
        self._wake.set()
        return await future

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for w in self._waiting:
            w.future.cancel()
        self._waiting.clear()

    def _take(self) -> list[_Waiting]:
        """The oldest live request and the live ones that can share its batch."""
        for w in self._waiting:
            if w.cancel is not None and w.cancel.is_set() and not w.future.done():
                w.future.set_exception(ClientGone())
                self.stats.requests_cancelled += 1
        self._waiting = [w for w in self._waiting if not w.future.done()]  # clients gone away
        if not self._waiting:
            return []
        key, group, texts, rest = self._waiting[0].key, [], 0, []
        for w in self._waiting:
            if w.key == key and (not group or texts + len(w.items) <= self.max_texts):
                group.append(w)
                texts += len(w.items)
            else:
                rest.append(w)
        self._waiting = rest
        return group

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.window_s)  # let requests sent together arrive together
            while group := self._take():
                await self._run(group)

    async def _run(self, group: list[_Waiting]) -> None:
        try:
            outcomes = await self.batcher.run_exclusive(group[0].run_many, [w.items for w in group])
        except Exception as exc:  # goes back to each caller as its own error
            for w in group:
                if not w.future.done():
                    w.future.set_exception(exc)
            return
        self.stats.batches += 1
        self.stats.max_requests_merged = max(self.stats.max_requests_merged, len(group))
        self.stats.max_texts_merged = max(
            self.stats.max_texts_merged, sum(len(w.items) for w in group)
        )
        for w, outcome in zip(group, outcomes, strict=True):
            if w.future.done():
                continue
            if isinstance(outcome, InvalidRequest):
                w.future.set_exception(outcome)
            else:
                w.future.set_result(outcome)
