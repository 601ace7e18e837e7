"""The HTTP plumbing the fake APIs share: a JSON request handler, what a request is kept as, and
the two ways a fault answers (an error status, or a connection shut without a reply).

Each fake (`anthropic_server`, `openai_server`) subclasses `JsonHandler` for its routes and says
how its API words an error (`error_reply`); everything on the wire below that is here.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol


@dataclass
class Seen:
    body: dict[str, Any]
    headers: dict[str, str]
    received: float
    answered: float | None = None
    outcome: str = "pending"  # ok | fault:<kind> | handler_error
    path: str = ""
    method: str = "POST"

    @property
    def fingerprint(self) -> str:
        return json.dumps(self.body, sort_keys=True)


class Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default of 5 drops connection bursts into SYN retries
    daemon_threads = True


class StatusFault(Protocol):
    """What a refusal needs of a fault: its kind and how long the client should wait."""

    @property
    def kind(self) -> str: ...

    @property
    def retry_after(self) -> float | None: ...


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms ACK stalls

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def error_reply(self, kind: str) -> tuple[int, dict[str, Any]]:
        """The status and the API's error body for an injected fault of `kind`."""
        raise NotImplementedError

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _read_json(self) -> dict[str, Any]:
        """The request's JSON body ({} when there is none)."""
        length = int(self.headers.get("content-length", "0"))
        return json.loads(self.rfile.read(length) or b"{}")

    def _seen(self, body: dict[str, Any], method: str = "POST") -> Seen:
        """This request as the fake keeps it, received now."""
        headers = {k.lower(): v for k, v in self.headers.items()}
        return Seen(body, headers, time.time(), path=self.path, method=method)

    def _drop(self, seen: Seen, outcome: str) -> None:
        """Shut the connection without a reply, as a connection lost on the way does."""
        seen.outcome = outcome
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _refuse(self, seen: Seen, fault: StatusFault) -> None:
        """Answer with the fault's error status instead of doing the work."""
        seen.outcome = f"fault:{fault.kind}"
        headers = {"connection": "close"}
        if fault.retry_after is not None:
            headers["retry-after-ms"] = str(int(fault.retry_after * 1000))
        status, payload = self.error_reply(fault.kind)
        self.close_connection = True
        self._send(status, payload, headers)
