"""A fake Anthropic Messages API on 127.0.0.1, driven by a callable, with fault injection.

Used through the real `anthropic` SDK (point `base_url` or ANTHROPIC_BASE_URL at `server.url`),
so tests exercise the SDK's retries, timeouts and parsing, not a mock of them.

    with FakeAnthropic(lambda req: "hello") as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="x")

The handler gets the request body (a dict) and returns a `str` (one text block), a `dict` of
Message fields (e.g. from `tool_use(...)`), or a `Fault`. `faults(body, n)` may inject a fault
before the handler runs (n = requests seen so far). Every request is kept in `server.requests`.

Message Batches: POST /v1/messages/batches creates a batch, GET /v1/messages/batches/{id} answers
`in_progress` for `batch_polls` retrievals (and at least `batch_seconds`), then `ended`, and GET
.../results streams one JSONL line per request, answered by the same handler as /v1/messages (a
`Fault` becomes an `errored` result; `Fault("expired")` / `Fault("canceled")` those results;
`flaky_results` faults a seeded share of them). GET /v1/messages/batches lists the batches newest
first, paged as the API pages them (`limit`, `before_id`, `after_id`; `has_more`, `first_id`,
`last_id`), so the SDK's auto-pagination works.

`faults` applies to batch creation as it does to /v1/messages; `list_faults(n)` to the list
(a status `Fault`: the look-up of recent batches fails while it returns one). A fault is the
server's answer to the request, so none of them creates a batch, except those that strike once
the work is done: `Fault.drop_reply()` creates the batch (or computes the message), then shuts
the connection without a reply, as a connection lost on the way back does; `Fault.hold(event)`
creates it and holds the reply until the test sets `event` (a process can be killed between the
two); `Fault.drop_reply(event)` holds, then drops.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.wire import JsonHandler, Seen, Server
from tests.limits import HANG_S


@dataclass(frozen=True)
class Fault:
    kind: str
    """rate_limit | overloaded | server_error | authentication | invalid_request | drop | slow
    (before the work);
    drop_reply | hold (after it); expired | canceled (batch results only)."""
    retry_after: float | None = None
    seconds: float = 0.0
    release: threading.Event | None = field(default=None, compare=False)

    @staticmethod
    def rate_limit(retry_after: float = 0.05) -> Fault:
        return Fault("rate_limit", retry_after=retry_after)

    @staticmethod
    def overloaded() -> Fault:
        return Fault("overloaded")

    @staticmethod
    def server_error(retry_after: float | None = None) -> Fault:
        return Fault("server_error", retry_after=retry_after)

    @staticmethod
    def authentication() -> Fault:
        return Fault("authentication")

    @staticmethod
    def invalid_request() -> Fault:
        """A request the API refuses (400): the same every time, so never worth retrying."""
        return Fault("invalid_request")

    @staticmethod
    def drop() -> Fault:
        return Fault("drop")

    @staticmethod
    def slow(seconds: float) -> Fault:
        return Fault("slow", seconds=seconds)

    @staticmethod
    def drop_reply(release: threading.Event | None = None) -> Fault:
        """Do the work (create the batch), then shut the connection without replying (once
        `release` is set, if given)."""
        return Fault("drop_reply", release=release)

    @staticmethod
    def hold(release: threading.Event) -> Fault:
        """Do the work, then reply only once `release` is set (or HANG_S has passed)."""
        return Fault("hold", release=release)


Reply = str | dict[str, Any] | Fault
Handler = Callable[[dict[str, Any]], Reply]
FaultPlan = Callable[[dict[str, Any], int], Fault | None]

STATUS = {
    "rate_limit": 429,
    "overloaded": 529,
    "server_error": 500,
    "authentication": 401,
    "invalid_request": 400,
}
ERROR_TYPE = {
    "rate_limit": "rate_limit_error",
    "overloaded": "overloaded_error",
    "server_error": "api_error",
    "authentication": "authentication_error",
    "invalid_request": "invalid_request_error",
}


def text(t: str, stop_reason: str = "end_turn") -> dict[str, Any]:
    return {"content": [{"type": "text", "text": t}], "stop_reason": stop_reason}


def not_found(path: str) -> dict[str, Any]:
    """The API's 404 body."""
    return {"type": "error", "error": {"type": "not_found_error", "message": path}}


def tool_use(name: str, input: dict[str, Any]) -> dict[str, Any]:
    block_id = f"toolu_{uuid.uuid4().hex[:20]}"
    block = {"type": "tool_use", "id": block_id, "name": name, "input": input}
    return {"content": [block], "stop_reason": "tool_use"}


def random_faults(rate: float, seed: int = 0, slow_s: float = 3.0) -> FaultPlan:
    """Fault `rate` of requests, spread over every kind; seeded, thread-safe."""
    rng = random.Random(seed)
    lock = threading.Lock()
    kinds = [
        Fault.rate_limit(),
        Fault.overloaded(),
        Fault.server_error(),
        Fault.drop(),
        Fault.slow(slow_s),
    ]

    def plan(body: dict[str, Any], n: int) -> Fault | None:
        with lock:
            return rng.choice(kinds) if rng.random() < rate else None

    return plan


def flaky_results(
    handler: Handler, rate: float, seed: int = 0, kinds: tuple[Fault, ...] | None = None
) -> Handler:
    """`handler`, but a seeded `rate` of its answers are faults (by default errored, expired or
    canceled in turn at random): in a message batch, that share of results fails."""
    rng = random.Random(seed)
    lock = threading.Lock()
    choices = kinds or (Fault.overloaded(), Fault("expired"), Fault("canceled"))

    def answer(body: dict[str, Any]) -> Reply:
        with lock:
            fault = rng.choice(choices) if rng.random() < rate else None
        return fault or handler(body)

    return answer


@dataclass
class FakeBatch:
    """A message batch as the fake keeps it; `results` is fixed when it ends."""

    id: str
    requests: list[dict[str, Any]]
    created: float
    polls: int = 0
    results: list[dict[str, Any]] | None = None


@dataclass
class FakeAnthropic:
    handler: Handler
    latency: float = 0.0
    faults: FaultPlan | None = None
    requests: list[Seen] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    prompt_cache: set[str] = field(default_factory=set)
    """Cached prefixes (tools + system marked with cache_control), as the API keeps them."""
    batch_polls: int = 1
    """Retrievals of a message batch that answer `in_progress` before it has `ended`."""
    batch_seconds: float = 0.0
    """... and the least time a batch takes to end."""
    batches: dict[str, FakeBatch] = field(default_factory=dict)
    list_faults: Callable[[int], Fault | None] | None = None
    """A status fault (`STATUS`) for GET /v1/messages/batches (n = requests seen so far)."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = Server(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answered(self) -> list[Seen]:
        with self._lock:
            return [s for s in self.requests if s.outcome == "ok"]

    def _record(self, seen: Seen) -> int:
        with self._lock:
            self.requests.append(seen)
            return len(self.requests) - 1

    def batch_creates(self) -> list[Seen]:
        with self._lock:
            return [s for s in self.requests if s.method == "POST" and s.path == BATCHES]

    def batch_lists(self) -> list[Seen]:
        """The GET /v1/messages/batches (list) requests, i.e. look-ups of recent batches."""
        with self._lock:
            return [s for s in self.requests if s.method == "GET" and _is_list(s.path)]

    def _batch_object(self, batch: FakeBatch, poll: bool) -> dict[str, Any]:
        """The MessageBatch; a retrieval (`poll`) moves the batch towards `ended`."""
        with self._lock:
            if poll and batch.results is None:
                batch.polls += 1
                waited = time.time() - batch.created >= self.batch_seconds
                if batch.polls > self.batch_polls and waited:
                    batch.results = [self._batch_result(r) for r in batch.requests]
            results = batch.results
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if results is None:
            counts["processing"] = len(batch.requests)
        else:
            for r in results:
                counts[r["result"]["type"]] += 1
        created = _iso(batch.created)
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "in_progress" if results is None else "ended",
            "request_counts": counts,
            "created_at": created,
            "expires_at": _iso(batch.created + 86400),
            "ended_at": None if results is None else _iso(time.time()),
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": None if results is None else f"{self.url}{BATCHES}/{batch.id}/results",
        }

    def batch_list(self, query: dict[str, str]) -> dict[str, Any]:
        """One page of GET /v1/messages/batches, newest first, as the API pages it."""
        with self._lock:
            newest_first = list(reversed(self.batches.values()))
        ids = [b.id for b in newest_first]
        limit = max(1, min(int(query.get("limit", 20)), 1000))
        if "before_id" in query:  # the page just before (newer than) the cursor
            end = ids.index(query["before_id"]) if query["before_id"] in ids else 0
            start = max(0, end - limit)
            more = start > 0
        else:  # the page just after (older than) the cursor, or the newest page
            after = query.get("after_id")
            start = ids.index(after) + 1 if after in ids else 0
            end = start + limit
            more = end < len(ids)
        page = [self._batch_object(b, poll=False) for b in newest_first[start:end]]
        return {
            "data": page,
            "has_more": more,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }

    def _batch_result(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request of a batch, answered by the handler (called with the lock held)."""
        body = request["params"]
        try:
            reply = self.handler(body)
        except Exception as e:
            self.errors.append(e)
            reply = Fault.server_error()
        if isinstance(reply, Fault):
            if reply.kind in ("expired", "canceled"):
                result: dict[str, Any] = {"type": reply.kind}
            else:
                err = {"type": ERROR_TYPE.get(reply.kind, "api_error"), "message": reply.kind}
                result = {"type": "errored", "error": {"type": "error", "error": err}}
        else:
            result = {"type": "succeeded", "message": _message(body, reply, self.prompt_cache)}
        return {"custom_id": request["custom_id"], "result": result}


BATCHES = "/v1/messages/batches"


def _is_list(path: str) -> bool:
    return urlsplit(path).path.rstrip("/") == BATCHES


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _cached_prefix(body: dict[str, Any]) -> str | None:
    """The tools + system prefix when the request marks it for caching (as the API does)."""
    tools, system = body.get("tools") or [], body.get("system")
    marked = any("cache_control" in t for t in tools) or (
        isinstance(system, list) and any("cache_control" in b for b in system)
    )
    return json.dumps([tools, system], sort_keys=True) if marked else None


def _message(
    body: dict[str, Any], reply: str | dict[str, Any], cache: set[str] | None = None
) -> dict[str, Any]:
    fields = text(reply) if isinstance(reply, str) else dict(reply)
    out_text = json.dumps(fields.get("content", ""))
    usage = {
        "input_tokens": len(json.dumps(body.get("messages", ""))) // 4 + 1,
        "output_tokens": len(out_text) // 4 + 1,
    }
    prefix = _cached_prefix(body)
    if prefix is not None and cache is not None:  # a 4-characters-per-token prompt cache
        tokens = len(prefix) // 4
        key = "cache_read_input_tokens" if prefix in cache else "cache_creation_input_tokens"
        usage[key] = tokens
        cache.add(prefix)
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "fake"),
        "stop_sequence": None,
        "usage": usage,
        **fields,
    }


def _make_handler(server: FakeAnthropic) -> type[JsonHandler]:
    class Handler(JsonHandler):
        def error_reply(self, kind: str) -> tuple[int, dict[str, Any]]:
            err = {"type": ERROR_TYPE[kind], "message": f"injected {kind}"}
            return STATUS[kind], {"type": "error", "error": err}

        def do_POST(self) -> None:  # noqa: N802 — http.server's naming
            body = self._read_json()
            seen = self._seen(body)
            n = server._record(seen)
            if self.path.rstrip("/") not in ("/v1/messages", BATCHES):
                seen.outcome = "not_found"
                self._send(404, not_found(self.path), {})
                return
            fault = server.faults(body, n) if server.faults else None
            if fault is not None and fault.kind == "drop":
                self._drop(seen, "fault:drop")
                return
            if fault is not None and fault.kind in STATUS:
                self._refuse(seen, fault)
                return
            if self.path.rstrip("/") == BATCHES:
                self._create_batch(seen, fault)
                return
            time.sleep(server.latency + (fault.seconds if fault is not None else 0.0))
            try:
                reply = server.handler(body)
            except Exception as e:  # the test's handler failed: make it visible, answer 500
                server.errors.append(e)
                seen.outcome = "handler_error"
                err = {"type": "api_error", "message": f"fake handler raised {e!r}"}
                self._send(500, {"type": "error", "error": err}, {})
                return
            if isinstance(reply, Fault):
                seen.outcome = f"fault:{reply.kind}"
                status = STATUS.get(reply.kind, 500)
                err = {"type": ERROR_TYPE.get(reply.kind, "api_error"), "message": reply.kind}
                self._send(status, {"type": "error", "error": err}, {})
                return
            try:
                with server._lock:
                    message = _message(body, reply, server.prompt_cache)
                if not self._deliverable(seen, fault):
                    return
                self._send(200, message, {})
            except OSError:  # the client went away (killed, or timed out on a slow reply)
                seen.outcome = "client_gone"
                return
            seen.answered = time.time()
            seen.outcome = "ok"

        def _deliverable(self, seen: Seen, fault: Fault | None) -> bool:
            """Apply a fault that strikes after the work: False when the reply is dropped."""
            if fault is not None and fault.release is not None:
                fault.release.wait(HANG_S)
            if fault is not None and fault.kind == "drop_reply":
                self._drop(seen, "fault:drop_reply")
                return False
            return True

        def _create_batch(self, seen: Seen, fault: Fault | None) -> None:
            batch_id = f"msgbatch_{uuid.uuid4().hex[:24]}"
            batch = FakeBatch(batch_id, seen.body["requests"], time.time())
            with server._lock:
                server.batches[batch.id] = batch
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.seconds)
            try:
                if not self._deliverable(seen, fault):
                    return
                self._send(200, server._batch_object(batch, poll=False), {})
            except OSError:  # the client went away (killed while the reply was held)
                seen.outcome = "client_gone"
                return
            seen.answered, seen.outcome = time.time(), "ok"

        def do_GET(self) -> None:  # noqa: N802 — http.server's naming
            seen = self._seen({}, method="GET")
            n = server._record(seen)
            if _is_list(self.path):
                fault = server.list_faults(n) if server.list_faults else None
                if fault is not None:
                    self._refuse(seen, fault)
                    return
                query = dict(parse_qsl(urlsplit(self.path).query))
                self._send(200, server.batch_list(query), {})
                seen.answered, seen.outcome = time.time(), "ok"
                return
            rest = self.path.split("?")[0].rstrip("/").removeprefix(BATCHES + "/").split("/")
            batch = server.batches.get(rest[0]) if self.path.startswith(BATCHES + "/") else None
            if batch is None or len(rest) > 2 or (len(rest) == 2 and rest[1] != "results"):
                seen.outcome = "not_found"
                self._send(404, not_found(self.path), {})
                return
            if len(rest) == 1:
                self._send(200, server._batch_object(batch, poll=True), {})
            elif batch.results is None:  # the API has no results before the batch ends
                seen.outcome = "not_found"
                err = {"type": "not_found_error", "message": "batch has not ended"}
                self._send(404, {"type": "error", "error": err}, {})
                return
            else:
                data = "".join(json.dumps(r) + "\n" for r in batch.results).encode()
                self.send_response(200)
                self.send_header("content-type", "application/binary")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
            seen.answered, seen.outcome = time.time(), "ok"

    return Handler
