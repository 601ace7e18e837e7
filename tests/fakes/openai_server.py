"""A fake OpenAI Chat Completions server on 127.0.0.1, driven by a callable, with fault injection.

Used through the real `openai` SDK (point `base_url` or OPENAI_BASE_URL at `server.url`, which
ends in /v1 as vLLM's does), so tests exercise the SDK's retries, timeouts and parsing.

    with FakeOpenAI(lambda body: "hello") as server:
        client = openai.OpenAI(base_url=server.url, api_key="x")

The handler gets the request body (a dict) and returns a `str` (the answer, finish_reason
"stop"), a `dict` of `text`, `finish_reason` and optionally `tool_calls` (each `id`, `name`,
`arguments` as a JSON string), or a `Fault` (the same faults as
`FakeAnthropic`'s: `rate_limit` 429, `server_error` 500, `overloaded` 529, `authentication` 401,
`invalid_request` 400, `drop`, `slow`). `faults(body, n)` may inject one before the handler runs
(n = requests seen so far). Every request is kept in `server.requests`.

`messages_handler(h)` adapts a handler written for Anthropic Messages bodies (tests/fakes/world.py)
to chat bodies, so one scripted world answers subjects on either provider.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.anthropic_server import STATUS, Fault, FaultPlan
from tests.fakes.wire import JsonHandler, Seen, Server

Reply = str | dict[str, Any] | Fault
Handler = Callable[[dict[str, Any]], Reply]
ERROR_TYPE = {"rate_limit": "rate_limit_exceeded", "authentication": "invalid_api_key"}


def messages_handler(handler: Callable[[dict[str, Any]], Any]) -> Handler:
    """`handler` (over Messages bodies, answering `text(...)` dicts) over chat bodies."""

    def answer(body: dict[str, Any]) -> Reply:
        system = "".join(m["content"] for m in body["messages"] if m["role"] == "system")
        turns = as_messages([m for m in body["messages"] if m["role"] != "system"])
        tools = [
            {"name": t["function"]["name"], "input_schema": t["function"].get("parameters")}
            for t in body.get("tools") or []
        ]
        reply = handler({**body, "system": system, "messages": turns, "tools": tools})
        if isinstance(reply, str | Fault):
            return reply
        blocks = reply.get("content", [])
        answer_text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        calls = [
            {"id": b["id"], "name": b["name"], "arguments": json.dumps(b.get("input") or {})}
            for b in blocks
            if b.get("type") == "tool_use"
        ]
        finish = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls"}
        out = {"text": answer_text, "finish_reason": finish.get(reply.get("stop_reason"), "stop")}
        return out | ({"tool_calls": calls} if calls else {})

    return answer


def as_messages(chat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages (no system) as Messages API messages: `tool_calls` as tool_use blocks,
    each `tool` message a tool_result block of the user message it opens."""
    out: list[dict[str, Any]] = []
    for m in chat:
        if m["role"] == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m["tool_call_id"],
                "content": m["content"],
            }
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif m["role"] == "assistant" and m.get("tool_calls"):
            blocks = [{"type": "text", "text": m["content"]}] if m.get("content") else []
            blocks += [
                {
                    "type": "tool_use",
                    "id": c["id"],
                    "name": c["function"]["name"],
                    "input": json.loads(c["function"]["arguments"]),
                }
                for c in m["tool_calls"]
            ]
            out.append({"role": "assistant", "content": blocks})
        elif (
            out and out[-1]["role"] == m["role"] == "user" and isinstance(out[-1]["content"], list)
        ):
            out[-1]["content"].append({"type": "text", "text": m["content"]})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


def completion(body: dict[str, Any], reply: str | dict[str, Any]) -> dict[str, Any]:
    """A chat.completion object answering `body`, with tokens counted at four characters each."""
    fields = {"text": reply, "finish_reason": "stop"} if isinstance(reply, str) else reply
    message: dict[str, Any] = {"role": "assistant", "content": fields["text"]}
    if fields.get("tool_calls"):
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in fields["tool_calls"]
        ]
    prompt = len(json.dumps(body.get("messages", ""))) // 4 + 1
    output = len(fields["text"]) // 4 + 1
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": message, "finish_reason": fields["finish_reason"]}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": output,
            "total_tokens": prompt + output,
        },
    }


@dataclass
class FakeOpenAI:
    handler: Handler
    latency: float = 0.0
    faults: FaultPlan | None = None
    requests: list[Seen] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = Server(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answered(self) -> list[Seen]:
        with self._lock:
            return [s for s in self.requests if s.outcome == "ok"]

    def _record(self, seen: Seen) -> int:
        with self._lock:
            self.requests.append(seen)
            return len(self.requests) - 1


def _error(kind: str, message: str) -> dict[str, Any]:
    """The API's error body."""
    return {"error": {"message": message, "type": ERROR_TYPE.get(kind, kind), "code": None}}


def _make_handler(server: FakeOpenAI) -> type[JsonHandler]:
    class Handler(JsonHandler):
        def error_reply(self, kind: str) -> tuple[int, dict[str, Any]]:
            return STATUS.get(kind, 500), _error(kind, f"injected {kind}")

        def do_POST(self) -> None:  # noqa: N802 — http.server's naming
            body = self._read_json()
            seen = self._seen(body)
            n = server._record(seen)
            if self.path.rstrip("/") != "/v1/chat/completions":
                seen.outcome = "not_found"
                self._send(404, _error("not_found", self.path), {})
                return
            fault = server.faults(body, n) if server.faults else None
            if fault is not None and fault.kind == "drop":
                self._drop(seen, "fault:drop")
                return
            if fault is not None and fault.kind in STATUS:
                self._refuse(seen, fault)
                return
            time.sleep(server.latency + (fault.seconds if fault is not None else 0.0))
            try:
                reply = server.handler(body)
            except Exception as e:  # the test's handler failed: make it visible, answer 500
                server.errors.append(e)
                seen.outcome = "handler_error"
                self._send(500, _error("server_error", f"fake handler raised {e!r}"), {})
                return
            if isinstance(reply, Fault):
                self._refuse(seen, reply)
                return
            try:
                self._send(200, completion(body, reply), {})
            except OSError:  # the client went away (killed, or timed out on a slow reply)
                seen.outcome = "client_gone"
                return
            seen.answered, seen.outcome = time.time(), "ok"

    return Handler
