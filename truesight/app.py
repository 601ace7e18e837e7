"""The worker's HTTP app: Anthropic-Messages-compatible `POST /v1/messages`, the truesight probes
(`GET /v1/probes`, `POST /v1/probes/{name}`) and `GET /health`.

Every error, FastAPI's own validation errors included, comes back in Anthropic's error shape so
that the `anthropic` SDK raises its usual exception classes.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from truesight import train
from truesight.constrain import compile_tool_input
from truesight.generate import Batcher, GenRequest, Sampling
from truesight.model import LoadedModel
from truesight.probes import dataset
from truesight.probes.cache import ResultCache, weights_fingerprint
from truesight.probes.inputs import ProbeInput
from truesight.probes.linear import ProbeStore
from truesight.probes.queue import ProbeQueue
from truesight.probes.registry import with_trained
from truesight.probes.runner import ProbeRunner
from truesight.probes.wire import (
    ProbeInfo,
    ProbeListing,
    ProbeRequest,
    ProbeResponse,
    TrainedProbeInfo,
    TrainRequest,
    TrainResponse,
)
from truesight.prompt import build_prompt
from truesight.wire import (
    ErrorDetail,
    ErrorResponse,
    InvalidRequest,
    MessageResponse,
    MessagesRequest,
    TextBlock,
    ToolUseBlock,
    Usage,
    describe_errors,
)

log = logging.getLogger(__name__)

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    500: "api_error",
}


def error_response(status: int, message: str) -> JSONResponse:
    """An Anthropic-shaped error: {"type": "error", "error": {"type": ..., "message": ...}}."""
    detail = ErrorDetail(type=_ERROR_TYPES.get(status, "api_error"), message=message)
    return JSONResponse(ErrorResponse(error=detail).model_dump(), status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return f"request body is not valid JSON ({err.get('ctx', {}).get('error', 'bad JSON')})"
    return describe_errors(exc.errors())


def _token_ok(request: Request, token: str) -> bool:
    """Accept `x-api-key: <token>` (what the SDK sends) or `Authorization: Bearer <token>`."""
    offered = request.headers.get("x-api-key")
    if offered is None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        offered = value.strip() if scheme.lower() == "bearer" else None
    # Constant-time comparison: the token guards a port that may face a network.
    return offered is not None and hmac.compare_digest(offered.encode(), token.encode())


def create_app(
    loaded: LoadedModel,
    *,
    token: str | None = None,
    max_batch: int = 16,
    window_s: float = 0.005,
    probe_cache: ResultCache | None = None,
    probes_dir: Path,
) -> FastAPI:
    """Build the app around a loaded model. With `token`, all but GET /health require it.

    `probe_cache` stores probe results; None computes every probe result afresh. `probes_dir`
    holds the trained probes served by `linear` and `tokens`.
    """
    batcher = Batcher(loaded, max_batch=max_batch, window_s=window_s)
    probes = ProbeRunner(loaded, probe_cache)
    queue = ProbeQueue(probes, batcher, window_s=window_s)
    store = ProbeStore(probes_dir)
    registry = with_trained(store)
    fingerprint: list[str] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await queue.aclose()
        await batcher.aclose()
        if probe_cache is not None:
            probe_cache.close()

    app = FastAPI(title="research worker", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.batcher = batcher
    app.state.probes = probes

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        public = request.method == "GET" and request.url.path == "/health"
        if token is not None and not public and not _token_ok(request, token):
            return error_response(401, "invalid x-api-key")
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, _validation_message(exc))

    @app.exception_handler(InvalidRequest)
    async def on_invalid_request(_: Request, exc: InvalidRequest) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(HTTPException)
    async def on_http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def on_error(_: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return error_response(500, f"{type(exc).__name__}: {exc}")

    @app.get("/health")
    async def health() -> dict[str, object]:
        stats = batcher.stats
        return {
            "status": "ok",
            "model": loaded.name,
            "device": str(loaded.device),
            "dtype": str(loaded.dtype).removeprefix("torch."),
            "requests_served": stats.requests_served,
            "batches_run": stats.batches_run,
            "max_batch_seen": stats.max_batch_seen,
            "probe_forward_passes": probes.stats.forward_passes,
            "probe_texts_computed": probes.stats.texts_computed,
            "probe_cache_hits": probes.stats.cache_hits,
            "probe_requests": queue.stats.requests,
            "probe_batches": queue.stats.batches,
            "probe_max_requests_merged": queue.stats.max_requests_merged,
        }

    @app.get("/v1/probes")
    async def list_probes() -> ProbeListing:
        infos = [
            ProbeInfo(name=p.name, description=p.description, params=p.params().model_dump())
            for p in registry.values()
        ]
        metas = store.metas()
        if metas and not fingerprint:
            # Read in the model thread, never beside a forward pass; once per worker.
            fingerprint.append(await batcher.run_exclusive(weights_fingerprint, loaded))
        mine = fingerprint[0] if fingerprint else ""
        trained = [
            TrainedProbeInfo(
                name=m.name,
                model=m.model.name,
                matches_model=m.model.fingerprint == mine,
                layer=m.layer,
                positive_label=m.positive_label,
                negative_label=m.negative_label,
                heldout_auroc=m.heldout_auroc,
                bow_auroc=m.bow_auroc,
                variant=m.variant,
                threshold_1pct_fpr=m.threshold_1pct_fpr,
                n_train=m.n_train,
                trained_at=m.trained_at,
            )
            for m in metas
        ]
        return ProbeListing(model=loaded.name, probes=infos, trained_probes=trained)

    @app.post("/v1/trained-probes")
    async def train_probe(body: TrainRequest) -> TrainResponse:
        started = time.perf_counter()
        try:
            data = dataset.parse(body.dataset.encode(), body.source, variant=body.variant)
            control = None
            if body.control is not None:
                control = dataset.parse(body.control.encode(), "control.jsonl", control=True)
            probe, trained = await batcher.run_exclusive(
                partial(
                    train.ensure,
                    loaded,
                    store.root,
                    data,
                    name=body.name,
                    layer=body.layer,
                    control=control,
                    c=body.c,
                )
            )
        except dataset.DatasetError as e:
            raise InvalidRequest(str(e)) from e
        if trained:
            log.info("trained probe %s: held-out AUROC %.3f", body.name, probe.meta.heldout_auroc)
        return TrainResponse(
            probe=probe.meta.model_dump(mode="json"),
            trained=trained,
            seconds=time.perf_counter() - started,
        )

    @app.post("/v1/probes/{name}")
    async def run_probe(name: str, body: ProbeRequest) -> ProbeResponse:
        probe = registry.get(name)
        if probe is None:
            raise HTTPException(404, f"unknown probe {name!r}; available: {', '.join(registry)}")
        contexts = body.contexts if body.contexts is not None else [""] * len(body.texts)
        if len(contexts) != len(body.texts):
            raise InvalidRequest(
                f"contexts has {len(contexts)} items but texts has {len(body.texts)}; "
                "give one context per text or none"
            )
        items = [ProbeInput(t, c) for t, c in zip(body.texts, contexts, strict=True)]
        # Concurrent requests for the same probe and params are merged into one batch, which runs
        # in the batcher's single model thread: a probe never runs beside a generate batch.
        results = await queue.submit(probe, items, body.params)
        return ProbeResponse(model=loaded.name, probe=name, results=results)

    @app.post("/v1/messages")
    async def messages(body: MessagesRequest) -> MessageResponse:
        if body.stream:
            raise InvalidRequest("stream=true is not supported by the local worker")
        prompt = build_prompt(loaded.tokenizer, body)
        n = len(prompt.input_ids)
        if n >= loaded.context_length:
            raise InvalidRequest(
                f"prompt is too long: {n} tokens > {loaded.context_length - 1} maximum"
            )
        sampling = Sampling(temperature=body.temperature, top_p=body.top_p, top_k=body.top_k)
        tool = prompt.forced_tool
        constraint = None
        if tool is not None:  # off the event loop: the first call builds the vocabulary (~1 s)
            constraint = await asyncio.to_thread(compile_tool_input, loaded, tool, prompt.prefill)
        result = await batcher.submit(
            GenRequest(
                input_ids=prompt.input_ids,
                max_tokens=body.max_tokens,
                sampling=sampling,
                # A tool input is not text: a stop sequence inside one of its strings must not
                # cut a schema-valid call short.
                stop_sequences=() if tool is not None else tuple(body.stop_sequences),
                constraint=constraint,
            )
        )
        usage = Usage(input_tokens=result.input_tokens, output_tokens=result.output_tokens)
        if tool is not None and result.stop_reason == "end_turn":
            written = prompt.prefill + result.text
            try:
                args = json.loads(written)
            except json.JSONDecodeError as e:  # the grammar allows EOS only once the object closes
                raise RuntimeError(
                    f"constrained decoding for tool {tool.name!r} ended without a complete input "
                    f"(does any input satisfy its schema?): {written!r}"
                ) from e
            call = ToolUseBlock(name=tool.name, input=args)
            return MessageResponse(
                model=body.model, content=[call], stop_reason="tool_use", usage=usage
            )
        # A forced call cut off by max_tokens comes back as what was written, with stop_reason
        # max_tokens (as on Anthropic's API), never as an invented tool_use.
        return MessageResponse(
            model=body.model,
            content=[TextBlock(text=result.text)],
            stop_reason=result.stop_reason,
            stop_sequence=result.stop_sequence,
            usage=usage,
        )

    return app
