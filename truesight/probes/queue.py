"""Dynamic batching of probe requests across clients.

Many agents ask for readouts of one or a few texts at a time. Requests queue here; the drain loop
takes the oldest waiting request and every other waiting request for the same probe with the same
parameters (up to `max_texts` texts), and computes them as one batch in the model thread, where
the probe's own length buckets apply to all of them together. While a batch runs, new requests
wait, so under load batches grow by themselves; an idle worker waits only `window_s` for company.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from truesight.generate import Batcher
from truesight.probes.inputs import ProbeInput
from truesight.probes.registry import Probe
from truesight.probes.runner import ProbeRunner
from truesight.wire import InvalidRequest


@dataclass
class QueueStats:
    """Counters for /health."""

    requests: int = 0
    batches: int = 0
    max_requests_merged: int = 0
    max_texts_merged: int = 0


@dataclass
class _Waiting:
    probe: Probe
    items: list[ProbeInput]
    params: dict[str, Any]
    future: asyncio.Future[list[dict[str, Any]]] = field(repr=False)

    @property
    def key(self) -> tuple[str, str]:
        return self.probe.name, json.dumps(self.params, sort_keys=True)


class ProbeQueue:
    """Merges concurrent requests with the same probe and parameters into one batch."""

    def __init__(
        self,
        runner: ProbeRunner,
        batcher: Batcher,
        *,
        max_texts: int = 64,
        window_s: float = 0.005,
    ):
        self.runner, self.batcher = runner, batcher
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
    ) -> list[dict[str, Any]]:
        """Results for `items`, in order; raises the InvalidRequest its own inputs caused."""
        if self._task is None:  # started lazily, inside the server's running loop
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._loop(), name="probe-queue")
        future: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(probe, items, params, future))
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
        first = group[0]
        try:
            outcomes = await self.batcher.run_exclusive(
                self.runner.run_many, first.probe, [w.items for w in group], first.params
            )
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
