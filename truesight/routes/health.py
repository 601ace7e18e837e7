"""GET /health: the model the worker serves and its counters. Open without the token."""

from __future__ import annotations

from fastapi import APIRouter

from truesight.continuous import ContinuousBatcher
from truesight.routes.state import WorkerDep

router = APIRouter()


@router.get("/health")
async def health(worker: WorkerDep) -> dict[str, object]:
    loaded, batches = worker.loaded, worker.batcher.stats
    probes, queue = worker.probes.stats, worker.queue.stats
    prefixes = worker.batcher.prefixes
    return {
        "status": "ok",
        "model": loaded.name,
        "device": str(loaded.device),
        "dtype": str(loaded.dtype).removeprefix("torch."),
        "fingerprint": worker.fingerprint,
        "parent_pid": worker.parent_pid,
        "batching": "continuous" if isinstance(worker.batcher, ContinuousBatcher) else "static",
        "requests_served": batches.requests_served,
        "batches_run": batches.batches_run,
        "max_batch_seen": batches.max_batch_seen,
        "decode_steps": batches.decode_steps,
        "rows_running": batches.rows_running,
        "requests_waiting": worker.batcher.waiting(),
        "requests_cancelled": batches.requests_cancelled,
        "probe_forward_passes": probes.forward_passes,
        "probe_suffix_passes": probes.suffix_passes,
        "probe_tokens_forwarded": probes.tokens_forwarded,
        "probe_texts_computed": probes.texts_computed,
        "probe_cache_hits": probes.cache_hits,
        "probe_requests": queue.requests,
        "probe_batches": queue.batches,
        "probe_max_requests_merged": queue.max_requests_merged,
        "probe_requests_cancelled": queue.requests_cancelled,
        "prefix_cache": None if prefixes is None else vars(prefixes.stats),
    }
