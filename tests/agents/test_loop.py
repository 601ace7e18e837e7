"""The agent loop's own retries: a turn whose call fails after the SDK's retries is sent again,
with growing waits, when the failure may pass; a turn that keeps failing raises `Unavailable`
(never handed to the agent as a reply); a request the API refuses is not sent again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agents.client import CallResult, CallSpec, Endpoint, LLMClient, Unavailable, retryable
from agents.loop import Chat, Retry, user
from orchestrator.records import Records
from tests.fakes.anthropic_server import FakeAnthropic, Fault

SPEC = CallSpec("evaluate", "batch-01", "evaluator-1")
PARAMS = {"max_tokens": 50}


@pytest.mark.parametrize(
    ("error", "may_pass"),
    [
        ("HTTP 529: Overloaded", True),
        ("HTTP 429: rate limited", True),
        ("HTTP 500: internal", True),
        ("HTTP 503: unavailable", True),
        ("HTTP 408: request timeout", True),
        ("APIConnectionError: Connection error.", True),
        ("APITimeoutError: Request timed out.", True),
        ("batch errored: overloaded_error: busy", True),
        ("batch errored: api_error: oops", True),
        ("batch expired", True),
        ("batch canceled", True),
        ("batch result missing", True),
        ("batch creation unresolved: the look-up failed: HTTP 500", True),
        ("HTTP 400: prompt is too long", False),
        ("HTTP 403: forbidden", False),
        ("HTTP 404: model not found", False),
        ("HTTP 413: request too large", False),
        ("batch errored: invalid_request_error: bad params", False),
    ],
)
def test_which_failures_may_pass(error: str, may_pass: bool) -> None:
    assert retryable(error) is may_pass


def send(
    server: FakeAnthropic, records: Records, retry: Retry, heard: list[tuple[int, float, str]]
) -> CallResult:
    """One turn through `Chat.send`, the SDK told not to retry (each try is one request)."""
    endpoint = Endpoint(base_url=server.url, api_key="k", max_retries=0, timeout_s=10.0)

    def on_retry(result: CallResult, attempt: int, wait_s: float) -> None:
        heard.append((attempt, wait_s, result.error or ""))

    async def go() -> CallResult:
        async with LLMClient(endpoint, records, "sha") as client:
            chat = Chat(client, SPEC, "claude-sonnet-4-6", PARAMS, retry=retry, on_retry=on_retry)
            return await chat.send([user("judge these")], [], {"turn": 0})

    return asyncio.run(go())


@pytest.fixture
def records(tmp_path: Path) -> Records:
    return Records(tmp_path / "records.sqlite")


def test_a_turn_that_fails_twice_is_sent_again_and_answered(records: Records) -> None:
    failures = iter([Fault.overloaded(), Fault.server_error()])

    def handler(body: dict[str, Any]) -> Any:
        return next(failures, None) or "judged"

    heard: list[tuple[int, float, str]] = []
    with FakeAnthropic(handler) as server:
        result = send(server, records, Retry(tries=2, wait_s=0.01), heard)
        assert len(server.requests) == 3
    assert result.error is None and result.text == "judged"
    assert [(n, w) for n, w, _ in heard] == [(1, 0.01), (2, 0.02)]  # the wait doubles
    assert heard[0][2].startswith("HTTP 529") and heard[1][2].startswith("HTTP 500")
    assert records.usage()["evaluate"]["calls"] == 3  # each try in the ledger, one answer
    assert records.lookup(result.key) is not None


def test_a_turn_that_keeps_failing_raises_unavailable(records: Records) -> None:
    heard: list[tuple[int, float, str]] = []
    with FakeAnthropic(lambda body: Fault.overloaded()) as server:
        with pytest.raises(Unavailable, match=r"HTTP 529.*still failing after 2 tries"):
            send(server, records, Retry(tries=1, wait_s=0.01), heard)
        assert len(server.requests) == 2
    assert len(heard) == 1
    assert records.usage()["evaluate"] == pytest.approx(
        records.usage()["evaluate"] | {"calls": 2, "errors": 1}
    )


def test_a_refused_turn_is_answered_with_its_error_not_sent_again(records: Records) -> None:
    heard: list[tuple[int, float, str]] = []
    with FakeAnthropic(lambda body: Fault.invalid_request()) as server:
        result = send(server, records, Retry(tries=3, wait_s=0.01), heard)
        assert len(server.requests) == 1
    assert result.error is not None and result.error.startswith("HTTP 400") and not heard
