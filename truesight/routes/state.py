"""What every route shares: the loaded model, its batcher, the probes and their queue, and the
dependency (`WorkerDep`) that hands them to a route."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from truesight.continuous import ContinuousBatcher
from truesight.generate import Batcher
from truesight.model import LoadedModel
from truesight.prefill import supports_reuse
from truesight.prefix_cache import PrefixCache
from truesight.probes.cache import ResultCache, weights_fingerprint
from truesight.probes.linear import ProbeStore
from truesight.probes.queue import ProbeQueue
from truesight.probes.readouts import Readouts
from truesight.probes.registry import Probe, with_trained
from truesight.probes.runner import ProbeRunner


@dataclass
class WorkerState:
    """One worker's model and the machinery around it, built once per app."""

    loaded: LoadedModel
    batcher: Batcher | ContinuousBatcher
    probes: ProbeRunner
    queue: ProbeQueue
    store: ProbeStore
    registry: dict[str, Probe]
    cache: ResultCache | None
    fingerprint: str | None = None
    """The model's weights fingerprint (trained probes name the model; /health shows it)."""
    parent_pid: int | None = None
    """The process this worker lives for (it stops when that ends); None: a shared worker."""

    @classmethod
    def build(
        cls,
        loaded: LoadedModel,
        *,
        max_batch: int,
        window_s: float,
        cache: ResultCache | None,
        probes_dir: Path,
        prefix_cache_mb: float = 0,
        batching: str = "continuous",
    ) -> WorkerState:
        prefixes = None
        stackable = supports_reuse(loaded)  # a KV that can be padded, cut and stacked by row
        if prefix_cache_mb > 0 and stackable:
            prefixes = PrefixCache(budget_bytes=int(prefix_cache_mb * 2**20))
        kind = ContinuousBatcher if batching == "continuous" and stackable else Batcher
        batcher = kind(loaded, max_batch=max_batch, window_s=window_s, prefixes=prefixes)
        probes = ProbeRunner(loaded, cache)
        store = ProbeStore(probes_dir)
        registry = with_trained(store)
        queue = ProbeQueue(probes, batcher, window_s=window_s, readouts=Readouts(probes, registry))
        # Read now, before any forward pass: /health reports it, so that a run sharding probe
        # requests over several workers can check they all hold the same weights.
        fingerprint = weights_fingerprint(loaded)
        return cls(loaded, batcher, probes, queue, store, registry, cache, fingerprint)

    async def weights_fingerprint(self) -> str:
        if self.fingerprint is None:
            # Read in the model thread, never beside a forward pass; once per worker.
            self.fingerprint = await self.batcher.run_exclusive(weights_fingerprint, self.loaded)
        return self.fingerprint

    async def aclose(self) -> None:
        await self.queue.aclose()
        await self.batcher.aclose()
        if self.cache is not None:
            self.cache.close()


async def current_worker(request: Request) -> WorkerState:
    """The app's `WorkerState` (async, so FastAPI does not send it to its thread pool)."""
    return request.app.state.worker


WorkerDep = Annotated[WorkerState, Depends(current_worker)]
