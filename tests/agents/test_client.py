"""The one LLM client through the real anthropic SDK against the fake server: retries, ledger."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agents.client import AuthenticationFailed, CallSpec, Endpoint, LLMClient
from orchestrator.records import Records
from tests.conftest import API_KEY
from tests.fakes.anthropic_server import FakeAnthropic, Fault, text
from tests.limits import HANG_S, SDK_TIMEOUT_S

SPEC = CallSpec("collect", "item-1", "subject")
PARAMS = {"max_tokens": 50, "temperature": 0.7, "top_p": None, "stop_sequences": []}


def call(server: FakeAnthropic, records: Records, spec: CallSpec = SPEC, **kw: Any):
    endpoint = Endpoint(
        base_url=server.url,
        api_key="k",
        max_retries=kw.pop("retries", 3),
        timeout_s=kw.pop("timeout", 5.0),
    )

    async def go():
        async with LLMClient(endpoint, records, "sha") as client:
            return await client.call(
                spec,
                model="claude-sonnet-4-6",
                params=PARAMS,
                system="be brief",
                messages=[{"role": "user", "content": "hi"}],
            )

    return asyncio.run(go())


@pytest.fixture
def records(tmp_path: Path) -> Records:
    return Records(tmp_path / "records.sqlite")


def first_time(fault: Fault):
    seen: set[str] = set()

    def plan(body: dict, n: int) -> Fault | None:
        key = str(body)
        if key in seen:
            return None
        seen.add(key)
        return fault

    return plan


@pytest.mark.parametrize(
    "fault",
    [
        Fault.rate_limit(0.3),
        Fault.overloaded(),
        Fault.server_error(),
        Fault.drop(),
        Fault.slow(HANG_S),  # an answer that never comes in time
    ],
    ids=["429", "529", "500", "drop", "slow"],
)
def test_faults_are_retried_by_the_sdk(fault: Fault, records: Records) -> None:
    # only the slow fault needs a short timeout: on a loaded machine the retry's answer could
    # take longer than one, and be asked for a third time
    timeout = 5.0 if fault.kind == "slow" else SDK_TIMEOUT_S
    with FakeAnthropic(lambda body: "fine", faults=first_time(fault)) as server:
        result = call(server, records, timeout=timeout)
    assert result.error is None and result.text == "fine"
    assert [s.outcome for s in server.requests][-1] == "ok"
    assert len(server.requests) == 2
    if fault.kind == "rate_limit":  # retry-after honoured
        assert server.requests[1].received - server.requests[0].received >= 0.3


def test_recorded_calls_are_never_made_again(records: Records) -> None:
    with FakeAnthropic(lambda body: "answer") as server:
        first = call(server, records)
        second = call(server, records)
        other = call(server, records, spec=CallSpec("collect", "item-2", "subject"))
    assert len(server.requests) == 2
    assert not first.cached and second.cached and not other.cached
    assert second.text == first.text and second.input_tokens == first.input_tokens


def test_a_failed_call_is_recorded_and_tried_again_next_pass(records: Records) -> None:
    broken = {"on": True}

    def handler(body: dict) -> Any:
        return Fault.server_error() if broken["on"] else text("recovered")

    with FakeAnthropic(handler) as server:
        failed = call(server, records, retries=1)
        assert failed.error is not None and "500" in failed.error
        assert records.lookup(failed.key) is None
        broken["on"] = False
        ok = call(server, records, retries=1)
    assert ok.text == "recovered" and ok.key == failed.key
    assert len(server.requests) == 3  # two tries in the failed pass, one in the next
    # one ledger row, three requests made for it: the SDK's retry is counted too
    assert [tuple(r) for r in records._all("SELECT COUNT(*), SUM(attempts) FROM calls")] == [(1, 3)]
    assert records.usage()["collect"]["calls"] == 3


def test_the_request_carries_sampling_params_and_is_priced(records: Records) -> None:
    with FakeAnthropic(lambda body: "x") as server:
        result = call(server, records)
    body = server.requests[0].body
    assert body["temperature"] == 0.7 and body["max_tokens"] == 50 and body["system"] == "be brief"
    assert "top_p" not in body and "stop_sequences" not in body
    assert result.cost_usd == pytest.approx(
        (result.input_tokens * 3 + result.output_tokens * 15) / 1e6
    )


def test_the_ledger_counts_every_request_the_sdk_made(records: Records) -> None:
    """Under injected faults the SDK retries inside one call; the ledger's attempts (and so
    SUMMARY's "API calls (incl. failed attempts)") add up to what the server received."""
    kinds = [
        Fault.rate_limit(),
        Fault.overloaded(),
        Fault.server_error(),
        Fault.drop(),
        Fault.slow(1.5),
    ]
    plans = {  # per call: the faults its requests meet, in order; then it is answered
        "0": [*kinds[:3], kinds[3]],  # beyond the SDK's retries: fails, answered next pass
        "1": [kinds[0]],
        "2": [kinds[3], kinds[4]],
        "3": [kinds[1], kinds[2]],
    }
    lock = threading.Lock()

    def faults(body: dict, n: int) -> Fault | None:
        with lock:
            left = plans.get(body["messages"][0]["content"], [])
            return left.pop(0) if left else None

    with FakeAnthropic(lambda body: "fine", faults=faults) as server:
        endpoint = Endpoint(base_url=server.url, api_key="k", max_retries=2, timeout_s=1.0)

        async def go() -> list:
            async with LLMClient(endpoint, records, "sha") as client:
                asks = [
                    client.call(
                        CallSpec("collect", f"item-{i}", "subject"),
                        model="claude-sonnet-4-6",
                        params=PARAMS,
                        messages=[{"role": "user", "content": str(i)}],
                    )
                    for i in range(6)
                ]
                return await asyncio.gather(*asks)

        first = asyncio.run(go())
        second = asyncio.run(go())  # the failed call is made again; the others are replayed
    assert [r.error is not None for r in first] == [True] + [False] * 5
    assert all(r.error is None for r in second)
    assert len(server.requests) == (3 + 2) + 2 + 3 + 3 + 1 + 1
    assert [tuple(r) for r in records._all("SELECT SUM(attempts) FROM calls")] == [(15,)]
    assert records.usage()["collect"]["calls"] == 15


def test_bad_credentials_stop_the_run(records: Records) -> None:
    with FakeAnthropic(lambda body: Fault.authentication()) as server:
        with pytest.raises(AuthenticationFailed):
            call(server, records, retries=3)
    assert len(server.requests) == 1  # a 401 is not retried


def test_concurrency_is_bounded(records: Records) -> None:
    lock, now, peak, entered = threading.Condition(), [0], [0], [0]

    def handler(body: dict) -> Any:
        with lock:
            now[0] += 1
            entered[0] += 1
            peak[0] = max(peak[0], now[0])
            lock.notify_all()
            # hold each call until a second is in flight (or none can come): however slow the
            # client, the bound is reached, so it is the bound that stops a third
            lock.wait_for(lambda: now[0] >= 2 or entered[0] == 6, timeout=HANG_S)
        time.sleep(0.05)
        with lock:
            now[0] -= 1
        return "ok"

    with FakeAnthropic(handler) as server:
        endpoint = Endpoint(base_url=server.url, api_key="k", concurrency=2)

        async def go():
            async with LLMClient(endpoint, records, "sha") as client:
                await asyncio.gather(
                    *(
                        client.call(
                            CallSpec("collect", f"i{i}", "subject"),
                            model="m",
                            params=PARAMS,
                            messages=[{"role": "user", "content": str(i)}],
                        )
                        for i in range(6)
                    )
                )

        asyncio.run(go())
    assert peak[0] == 2 and len(server.requests) == 6


def test_an_endpoint_never_shows_its_key() -> None:
    # an exception message or a LOG.md line that includes the endpoint must not carry the key
    endpoint = Endpoint(base_url="http://127.0.0.1:1", api_key=API_KEY)
    assert API_KEY not in repr(endpoint) and API_KEY not in str(endpoint)
    assert endpoint.api_key == API_KEY


def started_rows(records: Records) -> list[tuple]:
    rows = records._all("SELECT key, stage, item, role, model, max_tokens, orphaned FROM started")
    return [tuple(r) for r in rows]


def test_a_call_in_flight_is_recorded_as_started_until_its_result_is_stored(
    records: Records,
) -> None:
    in_flight: list[list[tuple]] = []

    def handler(body: dict) -> Any:
        in_flight.append(started_rows(records))  # the server holds the request: it is in flight
        return "answer"

    with FakeAnthropic(handler) as server:
        result = call(server, records)
    assert in_flight == [[(result.key, "collect", "item-1", "subject", "claude-sonnet-4-6", 50, 0)]]
    assert started_rows(records) == []  # stored, and cleared in the same transaction
    assert records.lookup(result.key) is not None


def test_a_failed_call_is_no_longer_started_once_stored(records: Records) -> None:
    with FakeAnthropic(lambda body: Fault.server_error()) as server:
        failed = call(server, records, retries=1)
    assert failed.error is not None and len(server.requests) == 2
    assert started_rows(records) == []  # counted as paid attempts in `calls` instead
    assert records.usage()["collect"]["calls"] == 2


def test_a_call_refused_for_its_credentials_leaves_nothing_started(records: Records) -> None:
    with FakeAnthropic(lambda body: Fault.authentication()) as server:
        with pytest.raises(AuthenticationFailed):
            call(server, records, retries=3)
    assert started_rows(records) == []  # a 401 is not processed, so it cannot have been paid


def test_a_call_waiting_for_a_slot_is_not_started(records: Records) -> None:
    """Only calls that hold a slot are sent; the ones queued behind them were never sent and
    must not count as possibly paid if the process died now."""
    seen: list[int] = []

    def handler(body: dict) -> Any:
        # by the time a request arrives, every other call has run up to the slot it waits for
        seen.append(len(started_rows(records)))
        return "ok"

    with FakeAnthropic(handler) as server:
        endpoint = Endpoint(base_url=server.url, api_key="k", concurrency=1)

        async def go() -> None:
            async with LLMClient(endpoint, records, "sha") as client:
                calls = [
                    client.call(
                        CallSpec("collect", f"i{i}", "subject"),
                        model="claude-sonnet-4-6",
                        params=PARAMS,
                        messages=[{"role": "user", "content": str(i)}],
                    )
                    for i in range(3)
                ]
                await asyncio.gather(*calls)

        asyncio.run(go())
    assert seen == [1, 1, 1] and started_rows(records) == []
