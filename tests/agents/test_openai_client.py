"""The OpenAI client through the real openai SDK against the fake server: the request it sends,
the ledger, retries counted as attempts, faults as the error strings `retryable` reads."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agents.client import AuthenticationFailed, CallSpec, Endpoint, retryable
from agents.openai_client import OpenAIClient
from orchestrator.records import Records
from tests.fakes.anthropic_server import Fault
from tests.fakes.openai_server import FakeOpenAI
from tests.limits import HANG_S, SDK_TIMEOUT_S

SPEC = CallSpec("collect", "item-1", "subject")
TEXT_H = {"type": "text", "text": "h"}
PARAMS = {"max_tokens": 50, "temperature": 0.7, "top_p": None, "stop_sequences": ["END"]}


@pytest.fixture
def records(tmp_path: Path) -> Records:
    return Records(tmp_path / "records.sqlite")


def call(server: FakeOpenAI, records: Records, spec: CallSpec = SPEC, **kw: Any):
    endpoint = Endpoint(
        base_url=server.url,
        api_key="k",
        max_retries=kw.pop("retries", 3),
        timeout_s=kw.pop("timeout", SDK_TIMEOUT_S),
    )

    async def go():
        async with OpenAIClient(endpoint, records, "sha") as client:
            return await client.call(
                spec,
                model=kw.pop("model", "gpt-4o"),
                params=PARAMS,
                system="be brief",
                messages=[
                    {"role": "user", "content": [TEXT_H, {"type": "text", "text": "x"}]},
                    {"role": "assistant", "content": "ok"},
                    {"role": "user", "content": "hi"},
                ],
            )

    return asyncio.run(go())


def first_time(fault: Fault):
    seen: set[str] = set()

    def plan(body: dict, n: int) -> Fault | None:
        if (key := str(body)) in seen:
            return None
        seen.add(key)
        return fault

    return plan


def test_a_call_becomes_a_chat_completion_and_its_answer_a_text_block(records: Records) -> None:
    with FakeOpenAI(lambda body: {"text": "an answer", "finish_reason": "length"}) as server:
        result = call(server, records)
    [seen] = server.requests
    assert seen.body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hx"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "hi"},
    ]
    assert seen.body["max_tokens"] == 50 and seen.body["temperature"] == 0.7
    assert seen.body["stop"] == ["END"] and "top_p" not in seen.body
    assert seen.headers["authorization"] == "Bearer k"
    assert result.error is None and result.content == [{"type": "text", "text": "an answer"}]
    assert result.stop_reason == "max_tokens" and result.attempts == 1
    assert result.cost_usd == pytest.approx(
        (result.input_tokens * 2.5 + result.output_tokens * 10) / 1e6
    )
    assert result.cost_usd > 0


def test_prices_by_model(records: Records) -> None:
    with FakeOpenAI(lambda body: "fine") as server:
        mini = call(server, records, model="gpt-4o-mini")
        other = call(server, records, spec=CallSpec("collect", "x", "subject"), model="llama-3")
    list_price = (mini.input_tokens * 0.15 + mini.output_tokens * 0.6) / 1e6
    assert mini.cost_usd == pytest.approx(list_price)
    assert other.error is None and other.cost_usd is None  # unknown: unpriced, never free


def test_recorded_calls_are_never_made_again(records: Records) -> None:
    with FakeOpenAI(lambda body: "answer") as server:
        first = call(server, records)
        second = call(server, records)
        other = call(server, records, spec=CallSpec("collect", "item-2", "subject"))
    assert len(server.requests) == 2
    assert not first.cached and second.cached and not other.cached
    assert second.text == first.text == "answer" and second.key == first.key
    assert records.lookup(first.key) is not None


@pytest.mark.parametrize(
    "fault",
    [Fault.rate_limit(0.3), Fault.server_error(), Fault.drop(), Fault.slow(HANG_S)],
    ids=["429", "500", "drop", "slow"],
)
def test_faults_are_retried_by_the_sdk_and_counted(fault: Fault, records: Records) -> None:
    timeout = 3.0 if fault.kind == "slow" else SDK_TIMEOUT_S
    with FakeOpenAI(lambda body: "fine", faults=first_time(fault)) as server:
        result = call(server, records, timeout=timeout)
    assert result.error is None and result.text == "fine"
    assert len(server.requests) == 2 and result.attempts == 2
    assert [tuple(r) for r in records._all("SELECT SUM(attempts) FROM calls")] == [(2,)]
    if fault.kind == "rate_limit":  # retry-after honoured
        assert server.requests[1].received - server.requests[0].received >= 0.3


@pytest.mark.parametrize(
    ("fault", "error", "may_pass"),
    [
        (Fault.rate_limit(0.01), "HTTP 429: injected rate_limit", True),
        (Fault.server_error(), "HTTP 500: injected server_error", True),
        (Fault.invalid_request(), "HTTP 400: injected invalid_request", False),
        (Fault.drop(), "APIConnectionError: Connection error.", True),
        (Fault.slow(HANG_S), "APITimeoutError: Request timed out.", True),
    ],
    ids=["429", "500", "400", "drop", "slow"],
)
def test_failures_carry_the_error_strings_retries_read(
    fault: Fault, error: str, may_pass: bool, records: Records
) -> None:
    timeout = 1.0 if fault.kind == "slow" else SDK_TIMEOUT_S
    with FakeOpenAI(lambda body: fault) as server:
        server.faults = (lambda body, n: fault) if fault.kind in ("drop", "slow") else None
        result = call(server, records, retries=1, timeout=timeout)
    assert result.error == error and retryable(result.error) is may_pass
    expected = 1 if fault.kind == "invalid_request" else 2  # a 400 is not retried
    assert result.attempts == expected == len(server.requests)
    assert records.lookup(result.key) is None  # a failure is recorded, not a result


def test_bad_credentials_stop_the_run(records: Records) -> None:
    with FakeOpenAI(lambda body: Fault.authentication()) as server:
        with pytest.raises(AuthenticationFailed, match="injected authentication"):
            call(server, records, retries=3)
    assert len(server.requests) == 1  # a 401 is not retried
    assert [tuple(r) for r in records._all("SELECT COUNT(*) FROM calls")] == [(0,)]


def test_tool_choice_is_refused(records: Records) -> None:
    endpoint = Endpoint(base_url="http://127.0.0.1:9/v1", api_key="k")
    tools = [{"name": "t", "description": "d", "input_schema": {"type": "object"}}]

    async def go() -> None:
        async with OpenAIClient(endpoint, records, "sha") as client:
            await client.call(
                SPEC,
                model="gpt-4o",
                params={},
                messages=[],
                tools=tools,
                tool_choice={"type": "any"},
            )

    with pytest.raises(ValueError, match="tool_choice"):
        asyncio.run(go())


READ_FILE = {
    "name": "read_file",
    "description": "Read a file.",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
}


def test_a_conversation_with_a_tool_call_maps_to_chat_messages_and_back(records: Records) -> None:
    """The tool call becomes the assistant's `tool_calls`, its result a `tool` message answering
    its id (before the user's own words), the tools functions; a function call in the answer
    comes back as a tool_use block with its arguments parsed."""
    reply = {
        "text": "Sending it now.",
        "finish_reason": "tool_calls",
        "tool_calls": [{"id": "call_9", "name": "read_file", "arguments": '{"path": "b.txt"}'}],
    }
    with FakeOpenAI(lambda body: reply) as server:
        endpoint = Endpoint(base_url=server.url, api_key="k", max_retries=0)

        async def go():
            async with OpenAIClient(endpoint, records, "sha") as client:
                return await client.call(
                    SPEC,
                    model="gpt-4o",
                    params={"max_tokens": 50},
                    system="be brief",
                    tools=[READ_FILE],
                    messages=[
                        {"role": "user", "content": "What does a.txt say?"},
                        {
                            "role": "assistant",
                            "content": [
                                {"type": "text", "text": "Opening it."},
                                {
                                    "type": "tool_use",
                                    "id": "toolu_01",
                                    "name": "read_file",
                                    "input": {"path": "a.txt"},
                                },
                            ],
                        },
                        {
                            "role": "user",
                            "content": [
                                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "A"},
                                {"type": "text", "text": "Be quick."},
                            ],
                        },
                    ],
                )

        result = asyncio.run(go())
        [seen] = server.requests
    assert seen.body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "What does a.txt say?"},
        {
            "role": "assistant",
            "content": "Opening it.",
            "tool_calls": [
                {
                    "id": "toolu_01",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "a.txt"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_01", "content": "A"},
        {"role": "user", "content": "Be quick."},
    ]
    assert seen.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "parameters": READ_FILE["input_schema"],
                "description": "Read a file.",
            },
        }
    ]
    assert result.stop_reason == "tool_use"
    assert result.content == [
        {"type": "text", "text": "Sending it now."},
        {"type": "tool_use", "id": "call_9", "name": "read_file", "input": {"path": "b.txt"}},
    ]
