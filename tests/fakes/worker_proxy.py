"""A recording proxy in front of the real truesight worker, on 127.0.0.1.

Point RESEARCH_WORKER_URL at `proxy.url`: every request goes to the worker unchanged and its
answer comes back unchanged, and the proxy keeps each request (`Passed`: when it arrived, when it
went on to the worker, when the worker answered), so a test can tell when the worker was asked for
what, and how often. `gate(seen)` runs before a request goes on: it may hold or slow it.

    with WorkerProxy(worker.url) as proxy:
        ...  # a run against proxy.url
        asked = proxy.readouts()

JSON requests and answers only (the probe endpoints, /health): no streamed generation.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.fakes.wire import JsonHandler, Seen, Server
from tests.limits import HANG_S

READOUTS = "/v1/readouts"
PASSED_HEADERS = ("content-type", "x-api-key", "authorization")


@dataclass
class Passed(Seen):
    forwarded: float | None = None
    """When the request went on to the worker (after the gate)."""


@dataclass
class WorkerProxy:
    target: str
    """The worker's base URL."""
    gate: Callable[[Passed], None] | None = None
    requests: list[Passed] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=self.target, timeout=HANG_S)
        self._server = _Server(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> WorkerProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def __enter__(self) -> WorkerProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def readouts(self) -> list[Passed]:
        """The POST /v1/readouts requests the worker answered, in the order they arrived."""
        with self._lock:
            return [s for s in self.requests if s.path == READOUTS and s.answered is not None]

    def _record(self, seen: Passed) -> None:
        with self._lock:
            self.requests.append(seen)


class _Server(Server):
    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a killed run's, reset
            super().handle_error(request, client_address)


def _make_handler(proxy: WorkerProxy) -> type[JsonHandler]:
    class Handler(JsonHandler):
        def do_GET(self) -> None:
            self._forward("GET")

        def do_POST(self) -> None:
            self._forward("POST")

        def _forward(self, method: str) -> None:
            length = int(self.headers.get("content-length", "0"))
            raw = self.rfile.read(length) if length else b""
            seen = Passed(**vars(self._seen(_json(raw), method)))
            proxy._record(seen)
            if proxy.gate is not None:
                proxy.gate(seen)
            seen.forwarded = time.time()
            headers = {k: v for k, v in self.headers.items() if k.lower() in PASSED_HEADERS}
            reply = proxy._http.request(method, self.path, content=raw, headers=headers)
            seen.answered, seen.outcome = time.time(), "ok"
            try:
                self.send_response(reply.status_code)
                self.send_header("content-type", reply.headers.get("content-type", "text/plain"))
                self.send_header("content-length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)
                self.wfile.flush()
            except OSError:  # the client is gone (a killed run): the worker did the work anyway
                seen.outcome = "lost"

    return Handler


def _json(raw: bytes) -> dict[str, Any]:
    return json.loads(raw) if raw else {}
