"""The worker's HTTP app: Anthropic-Messages-compatible `POST /v1/messages`, the truesight probes
(`GET /v1/probes`, `POST /v1/probes/{name}`, `POST /v1/trained-probes`) and `GET /health`, each
group an `APIRouter` in `truesight.routes`. This module builds the app around them: the shared
`WorkerState`, the token check, and the error handlers.

Every error, FastAPI's own validation errors included, comes back in Anthropic's error shape so
that the `anthropic` SDK raises its usual exception classes.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from truesight.model import LoadedModel
from truesight.probes.cache import ResultCache
from truesight.routes import health, messages, probes
from truesight.routes.state import WorkerState
from truesight.wire import ErrorDetail, ErrorResponse, InvalidRequest, describe_errors

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


def _validation_message(request: Request, exc: RequestValidationError) -> str:
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return f"request body is not valid JSON ({err.get('ctx', {}).get('error', 'bad JSON')})"
        if err.get("type") == "missing" and tuple(err.get("loc", ())) == ("body",):
            return _empty_body_message(request)
    return describe_errors(exc.errors())


def _empty_body_message(request: Request) -> str:
    """For a request with no body at all: the fields its route requires, by name (pydantic's
    own error says only "Field required", of the body as a whole)."""
    body_field = getattr(request.scope.get("route"), "body_field", None)
    model = getattr(getattr(body_field, "field_info", None), "annotation", None)
    fields = getattr(model, "model_fields", {})
    required = [name for name, f in fields.items() if f.is_required()]
    if not required:
        return "the request body is empty; a JSON object is required"
    return "the request body is empty; required: " + "; ".join(
        f"{name}: Field required" for name in required
    )


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
    parent_pid: int | None = None,
    prefix_cache_mb: float = 0,
    batching: str = "continuous",
) -> FastAPI:
    """Build the app around a loaded model. With `token`, all but GET /health require it.

    `probe_cache` stores probe results; None computes every probe result afresh. `probes_dir`
    holds the trained probes served by `linear` and `tokens`. `parent_pid` is the process the
    worker lives for (shown on /health), None for a shared worker. `prefix_cache_mb` bounds the
    KV kept of prompt prefixes marked with `cache_control` (0 turns the prompt cache off).
    `batching` is "continuous" (`truesight.continuous`) or "static" (`truesight.generate`).
    """
    worker = WorkerState.build(
        loaded,
        max_batch=max_batch,
        window_s=window_s,
        cache=probe_cache,
        probes_dir=probes_dir,
        prefix_cache_mb=prefix_cache_mb,
        batching=batching,
    )
    worker.parent_pid = parent_pid

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await worker.aclose()

    app = FastAPI(title="research worker", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.worker = worker
    if token is not None:
        app.add_middleware(TokenGuard, token=token)
    _add_error_handlers(app)
    for routes in (health, probes, messages):
        app.include_router(routes.router)
    return app


class TokenGuard:
    """Refuses every request but GET /health that does not carry `token`.

    Plain ASGI, not Starlette's `BaseHTTPMiddleware`: that one hands the route a wrapped
    `receive` on which `request.is_disconnected()` never sees the client leave, and the worker
    needs to see it to stop generating for nobody (`truesight.cancel`).
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            public = request.method == "GET" and request.url.path == "/health"
            if not public and not _token_ok(request, self.token):
                await error_response(401, "invalid x-api-key")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _add_error_handlers(app: FastAPI) -> None:
    """Answer every error in Anthropic's shape; an unexpected one is logged and becomes a 500."""

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, _validation_message(request, exc))

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
