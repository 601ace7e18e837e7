"""The truesight probes: GET /v1/probes lists them, POST /v1/probes/{name} runs one,
POST /v1/readouts runs several on each text from one forward pass, and POST /v1/trained-probes
trains a linear probe into the worker's probes folder."""

from __future__ import annotations

import logging
import time
from functools import partial

from fastapi import APIRouter, Request, Response
from starlette.exceptions import HTTPException

from truesight import train, validity
from truesight.cancel import ClientGone, cancel_on_disconnect
from truesight.probes import dataset
from truesight.probes.inputs import ProbeInput
from truesight.probes.linear import LinearProbe, ProbeMeta
from truesight.probes.wire import (
    ProbeInfo,
    ProbeListing,
    ProbeRequest,
    ProbeResponse,
    ReadoutRequest,
    ReadoutResponse,
    TrainedProbeInfo,
    TrainRequest,
    TrainResponse,
)
from truesight.routes.state import WorkerDep, WorkerState
from truesight.wire import InvalidRequest

log = logging.getLogger(__name__)

router = APIRouter()


@router.get("/v1/probes")
async def list_probes(worker: WorkerDep) -> ProbeListing:
    infos = [
        ProbeInfo(name=p.name, description=p.description, params=p.params().model_dump())
        for p in worker.registry.values()
    ]
    metas = worker.store.metas()
    mine = await worker.weights_fingerprint() if metas else ""
    trained = [_trained_info(m, mine) for m in metas]
    return ProbeListing(model=worker.loaded.name, probes=infos, trained_probes=trained)


def _trained_info(meta: ProbeMeta, fingerprint: str) -> TrainedProbeInfo:
    """A trained probe as listed, saying whether it was trained on this worker's weights."""
    return TrainedProbeInfo(
        name=meta.name,
        model=meta.model.name,
        matches_model=meta.model.fingerprint == fingerprint,
        layer=meta.layer,
        positive_label=meta.positive_label,
        negative_label=meta.negative_label,
        heldout_auroc=meta.heldout_auroc,
        bow_auroc=meta.bow_auroc,
        variant=meta.variant,
        threshold_1pct_fpr=meta.threshold_1pct_fpr,
        n_train=meta.n_train,
        trained_at=meta.trained_at,
    )


@router.post("/v1/trained-probes")
async def train_probe(body: TrainRequest, worker: WorkerDep) -> TrainResponse:
    started = time.perf_counter()
    try:
        data = dataset.parse(body.dataset.encode(), body.source, variant=body.variant)
        control = None
        if body.control is not None:
            control = dataset.parse(body.control.encode(), "control.jsonl", control=True)
        transfer = None
        if body.transfer is not None:
            transfer = dataset.parse(body.transfer.encode(), body.transfer_source)
            validity.check_transfer_set(transfer)
        probe, trained, assessed = await worker.batcher.run_exclusive(
            partial(_train_and_assess, worker, body, data, control, transfer)
        )
    except dataset.DatasetError as e:
        raise InvalidRequest(str(e)) from e
    if trained:
        log.info("trained probe %s: held-out AUROC %.3f", body.name, probe.meta.heldout_auroc)
    return TrainResponse(
        probe=probe.meta.model_dump(mode="json"),
        trained=trained,
        seconds=time.perf_counter() - started,
        validity=assessed.model_dump(mode="json") if assessed is not None else None,
    )


def _train_and_assess(
    worker: WorkerState,
    body: TrainRequest,
    data: dataset.Dataset,
    control: dataset.Dataset | None,
    transfer: dataset.Dataset | None,
) -> tuple[LinearProbe, bool, validity.Validity | None]:
    """Train (or find) the probe, then its controls when asked for; in the model thread."""
    root = worker.store.root
    recipe = {"name": body.name, "layer": body.layer, "control": control, "c": body.c}
    probe, trained = train.ensure(worker.loaded, root, data, **recipe)
    assessed = None
    if transfer is not None or body.random_seed is not None:
        assessed = validity.assess(
            worker.loaded,
            root,
            probe,
            data,
            control=control,
            transfer=transfer,
            seed=body.random_seed,
        )
    return probe, trained, assessed


def _inputs(texts: list[str], contexts: list[str] | None) -> list[ProbeInput]:
    contexts = contexts if contexts is not None else [""] * len(texts)
    if len(contexts) != len(texts):
        raise InvalidRequest(
            f"contexts has {len(contexts)} items but texts has {len(texts)}; "
            "give one context per text or none"
        )
    return [ProbeInput(t, c) for t, c in zip(texts, contexts, strict=True)]


@router.post("/v1/readouts", response_model=ReadoutResponse)
async def run_readouts(body: ReadoutRequest, worker: WorkerDep, request: Request) -> Response:
    items = _inputs(body.texts, body.contexts)
    try:
        async with cancel_on_disconnect(request) as cancel:
            results = await worker.queue.submit_readouts(body.probes, items, cancel)
    except ClientGone:  # dropped before it ran: its client is gone
        return Response(status_code=499)
    return ReadoutResponse(model=worker.loaded.name, results=results)


@router.post("/v1/probes/{name}", response_model=ProbeResponse)
async def run_probe(name: str, body: ProbeRequest, worker: WorkerDep, request: Request) -> Response:
    registry = worker.registry
    probe = registry.get(name)
    if probe is None:
        raise HTTPException(404, f"unknown probe {name!r}; available: {', '.join(registry)}")
    items = _inputs(body.texts, body.contexts)
    # Concurrent requests for the same probe and params are merged into one batch, which runs
    # in the batcher's single model thread: a probe never runs beside a generate batch.
    try:
        async with cancel_on_disconnect(request) as cancel:
            results = await worker.queue.submit(probe, items, body.params, cancel)
    except ClientGone:
        return Response(status_code=499)
    return ProbeResponse(model=worker.loaded.name, probe=name, results=results)
