"""Message batches through the real anthropic SDK against the fake server: ledger, price, resume."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agents.batches import BatchCall, BatchRunner, BatchStopped
from agents.client import CallSpec, Endpoint, LLMClient
from agents.pricing import price_usd
from orchestrator.records import Records
from tests.fakes.anthropic_server import FakeAnthropic, Fault

MODEL = "claude-sonnet-4-6"
PARAMS = {"max_tokens": 50, "temperature": 0.7, "top_p": None, "stop_sequences": []}


def echo(body: dict) -> str:
    return f"answer to {body['messages'][0]['content']}"


def calls(n: int) -> list[BatchCall]:
    return [
        BatchCall(
            CallSpec("collect", f"item-{k}", "subject"),
            model=MODEL,
            params=PARAMS,
            messages=[{"role": "user", "content": f"question {k}"}],
            system="be brief",
        )
        for k in range(n)
    ]


def endpoint(server: FakeAnthropic) -> Endpoint:
    return Endpoint(base_url=server.url, api_key="k", max_retries=2, timeout_s=5.0)


def run(server: FakeAnthropic, records: Records, state: Path, todo: list[BatchCall], **kw):
    async def go():
        runner = BatchRunner(endpoint(server), records, "sha", state, poll_s=0.01, **kw)
        return await runner.run(todo)

    return asyncio.run(go())


@pytest.fixture
def records(tmp_path: Path) -> Records:
    return Records(tmp_path / "records.sqlite")


def test_a_batch_fills_the_ledger_at_half_price(records: Records, tmp_path: Path) -> None:
    state = tmp_path / "batches" / "s.json"
    with FakeAnthropic(echo, batch_polls=2) as server:
        results = run(server, records, state, calls(5))
        seen = len(server.requests)
        again = run(server, records, state, calls(5))
        assert len(server.requests) == seen  # the second pass asked nothing
        creates = server.batch_creates()
    assert len(creates) == 1 and len(creates[0].body["requests"]) == 5
    # sampling parameters travel as plain fields of each request's params
    params = creates[0].body["requests"][0]["params"]
    assert params["temperature"] == 0.7 and params["system"] == "be brief"
    assert "top_p" not in params and "stop_sequences" not in params
    assert [r.text for r in results] == [f"answer to question {k}" for k in range(5)]
    assert all(r.cached for r in again) and [r.text for r in again] == [r.text for r in results]
    for r in results:
        online = price_usd(MODEL, r.input_tokens, r.output_tokens)
        assert r.cost_usd == pytest.approx(online / 2) and r.cost_usd > 0
    responses = records.responses()
    assert sorted(responses) == [f"item-{k}" for k in range(5)]
    assert records.usage()["collect"]["calls"] == 5
    saved = json.loads(state.read_text())["batches"]
    assert [b["status"] for b in saved] == ["collected"]
    assert saved[0]["id"] in server.batches and set(saved[0]["calls"]) == {r.key for r in results}


def test_batched_and_online_calls_share_keys_and_answers(records: Records, tmp_path: Path) -> None:
    with FakeAnthropic(echo) as server:
        batched = run(server, records, tmp_path / "s.json", calls(2))

        async def online():
            async with LLMClient(endpoint(server), records, "sha") as client:
                c = calls(2)[1]
                return await client.call(
                    c.spec, model=c.model, params=c.params, messages=c.messages, system=c.system
                )

        replay = asyncio.run(online())
        assert not [s for s in server.requests if s.path == "/v1/messages"]
    assert replay.cached and replay.key == batched[1].key and replay.text == batched[1].text


def test_stopped_after_submit_resumes_the_same_batch(records: Records, tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    with FakeAnthropic(echo, batch_polls=3) as server:
        with pytest.raises(BatchStopped):  # a kill while the batch is in flight
            run(server, records, state, calls(4), stop=lambda: bool(server.batch_creates()))
        assert not records.responses()
        assert [b["status"] for b in json.loads(state.read_text())["batches"]] == ["in_progress"]
        seen: list[str] = []
        results = run(server, records, state, calls(4), observe=lambda e, s: seen.append(e))
        creates = server.batch_creates()
    assert len(creates) == 1  # resumed, not submitted (and paid for) again
    assert seen[0] == "resumed" and seen[-1] == "ended"
    assert [r.text for r in results] == [f"answer to question {k}" for k in range(4)]
    assert len(records.responses()) == 4


def test_failed_requests_are_errors_retried_on_the_next_pass(
    records: Records, tmp_path: Path
) -> None:
    broken = {
        "question 1": Fault.overloaded(),
        "question 2": Fault("expired"),
        "question 3": Fault("canceled"),
    }
    state = tmp_path / "s.json"

    def handler(body: dict):
        return broken.get(body["messages"][0]["content"]) or echo(body)

    with FakeAnthropic(handler) as server:
        first = run(server, records, state, calls(4))
        assert [r.error for r in first] == [
            None,
            "batch errored: overloaded_error: overloaded",
            "batch expired",
            "batch canceled",
        ]
        answered = {i: r.error is None for i, r in records.responses().items()}
        assert answered == {"item-0": True, "item-1": False, "item-2": False, "item-3": False}
        broken.clear()
        second = run(server, records, state, calls(4))
        creates = server.batch_creates()
    assert len(creates) == 2 and len(creates[1].body["requests"]) == 3
    assert all(r.error is None for r in second)
    assert all(r.error is None for r in records.responses().values())
    assert [b["status"] for b in json.loads(state.read_text())["batches"]] == ["collected"] * 2


def test_a_rejected_batch_records_every_call_as_failed(records: Records, tmp_path: Path) -> None:
    with FakeAnthropic(echo, faults=lambda body, n: Fault.server_error()) as server:
        results = run(server, records, tmp_path / "s.json", calls(3))
    assert all(r.error and r.error.startswith("HTTP 500") for r in results)
    assert not (tmp_path / "s.json").exists()
    # each call was carried by the three creation requests the SDK made (two of them retries)
    assert len(server.requests) == 3 and all(r.attempts == 3 for r in results)
    assert records.usage()["collect"]["calls"] == 9


def test_a_retried_creation_counts_for_every_call_it_carried(
    records: Records, tmp_path: Path
) -> None:
    once = iter([Fault.rate_limit()])
    with FakeAnthropic(echo, faults=lambda body, n: next(once, None)) as server:
        results = run(server, records, tmp_path / "s.json", calls(3))
    assert len(server.batch_creates()) == 2  # a 429, then the batch the SDK retried
    assert all(r.error is None and r.attempts == 2 for r in results)
    assert [tuple(r) for r in records._all("SELECT SUM(attempts) FROM calls")] == [(6,)]
