"""Stop generating for a client that has gone away.

Each generation request carries a `CancelFlag`. The route raises it when its client disconnects
(`request.is_disconnected()`, polled from the event loop while the request waits) or when its
handler is cancelled; the generator checks it between decode steps (`StopCancelled`, a transformers
`StoppingCriteria`) and before a queued request starts at all.

In a static batch a cancelled row is marked finished at the next step, so the batch ends as soon
as every row that still has a client is done; until then the gone row still rides along in each
forward pass (a static batch cannot shrink), its tokens thrown away. A request cancelled while
queued never runs. A scheduler that lets rows leave the batch (continuous batching) would drop the
row at once: it needs only the flag.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Sequence

import torch
from starlette.requests import Request
from transformers import StoppingCriteria

POLL_S = 0.1
"""How often a waiting request asks whether its client is still there."""


class CancelFlag:
    """Set once a request's answer has nobody left to read it; safe across threads."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


class ClientGone(Exception):
    """The request was cancelled because its client disconnected."""


class StopCancelled(StoppingCriteria):
    """Marks each row finished once its flag is set (rows without one run to their end)."""

    def __init__(self, flags: Sequence[CancelFlag | None], device: torch.device):
        self.flags = list(flags)
        self.device = device

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs
    ) -> torch.BoolTensor:
        gone = [f is not None and f.is_set() for f in self.flags]
        return torch.tensor(gone, dtype=torch.bool, device=self.device)


@contextlib.asynccontextmanager
async def cancel_on_disconnect(request: Request) -> AsyncIterator[CancelFlag]:
    """A flag that is set when `request`'s client disconnects or the handler is cancelled,
    for as long as the block runs."""
    flag = CancelFlag()

    async def watch() -> None:
        while not await request.is_disconnected():
            await asyncio.sleep(POLL_S)
        flag.set()

    watcher = asyncio.create_task(watch(), name="disconnect-watch")
    try:
        yield flag
    except asyncio.CancelledError:
        flag.set()
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
