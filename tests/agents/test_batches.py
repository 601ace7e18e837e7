"""Message batches through the real anthropic SDK against the fake server: ledger, price, resume,
and at most one batch per pass when a creation's reply is lost or its process killed."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import anthropic
import pytest

from agents.batches import BatchCall, BatchRunner, BatchStopped
from agents.client import AuthenticationFailed, CallSpec, Endpoint, LLMClient, retryable
from agents.pricing import price_usd
from memory import utc_stamp
from orchestrator.records import Records
from tests.conftest import ROOT
from tests.fakes.anthropic_server import FakeAnthropic, Fault, flaky_results
from tests.limits import HANG_S

MODEL = "claude-sonnet-4-6"
PARAMS = {"max_tokens": 50, "temperature": 0.7, "top_p": None, "stop_sequences": []}


def echo(body: dict) -> str:
    return f"answer to {body['messages'][0]['content']}"


def calls(n: int, subject: str = "item") -> list[BatchCall]:
    return [
        BatchCall(
            CallSpec("collect", f"{subject}-{k}", "subject"),
            model=MODEL,
            params=PARAMS,
            messages=[{"role": "user", "content": f"question {k}" + _about(subject)}],
            system="be brief",
        )
        for k in range(n)
    ]


def _about(subject: str) -> str:
    return "" if subject == "item" else f" about {subject}"


def creates(body: dict) -> bool:
    """Whether a request is a batch creation (for a fault plan)."""
    return "requests" in body


def endpoint(server: FakeAnthropic) -> Endpoint:
    return Endpoint(base_url=server.url, api_key="k", max_retries=2, timeout_s=5.0)


def runner(server: FakeAnthropic, records: Records, state: Path, **kw) -> BatchRunner:
    return BatchRunner(endpoint(server), records, "sha", state, poll_s=0.01, backoff_s=0.01, **kw)


def run(server: FakeAnthropic, records: Records, state: Path, todo: list[BatchCall], **kw):
    async def go():
        return await runner(server, records, state, **kw).run(todo)

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
        looked = server.batch_lists()
    assert all(r.error and r.error.startswith("HTTP 500") for r in results)
    # a 500 may come after the batch was made: each time, the recent batches were searched
    # before the creation was sent again (max_retries=2: three creation requests in all)
    assert len(server.batch_creates()) == 3 and len(looked) == 3
    assert all(r.attempts == 3 for r in results)
    assert records.usage()["collect"]["calls"] == 9
    [entry] = json.loads((tmp_path / "s.json").read_text())["batches"]
    assert entry["status"] == "not_created" and entry["posts"] == 3 and "id" not in entry


def test_a_definite_refusal_is_neither_looked_up_nor_sent_again(
    records: Records, tmp_path: Path
) -> None:
    def refuse(body: dict, n: int) -> Fault | None:
        return Fault.invalid_request() if creates(body) else None

    with FakeAnthropic(echo, faults=refuse) as server:
        results = run(server, records, tmp_path / "s.json", calls(2))
        assert len(server.requests) == 1  # one creation request, no look-up
    assert all(r.error and r.error.startswith("HTTP 400") and r.attempts == 1 for r in results)


def test_a_retried_creation_counts_for_every_call_it_carried(
    records: Records, tmp_path: Path
) -> None:
    once = iter([Fault.rate_limit()])
    with FakeAnthropic(echo, faults=lambda body, n: next(once, None)) as server:
        results = run(server, records, tmp_path / "s.json", calls(3))
        looked = server.batch_lists()
    assert len(server.batch_creates()) == 2  # a 429, then the batch sent again
    assert not looked  # a 429 creates nothing: no look-up before sending again
    assert all(r.error is None and r.attempts == 2 for r in results)
    assert [tuple(r) for r in records._all("SELECT SUM(attempts) FROM calls")] == [(6,)]


def test_the_fake_lists_batches_newest_first_in_pages_the_sdk_follows(tmp_path: Path) -> None:
    with FakeAnthropic(echo) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="k")
        made = [client.messages.batches.create(requests=[]).id for _ in range(5)]
        listed = [b.id for b in client.messages.batches.list(limit=2)]  # three pages
        page = client.messages.batches.list(limit=2, before_id=made[1])
        assert len(server.batch_lists()) == 4
    assert listed == made[::-1]
    assert [b.id for b in page.data] == [made[3], made[2]] and page.has_more


def test_a_lost_creation_reply_is_found_not_created_again(records: Records, tmp_path: Path) -> None:
    once = iter([Fault.drop_reply()])
    state = tmp_path / "s.json"
    seen: list[str] = []
    with FakeAnthropic(echo, faults=lambda body, n: next(once, None)) as server:
        results = run(server, records, state, calls(4), observe=lambda e, s: seen.append(e))
        assert len(server.batch_creates()) == 1 and len(server.batches) == 1
        [batch_id] = server.batches
    assert [r.text for r in results] == [f"answer to question {k}" for k in range(4)]
    assert all(r.attempts == 1 for r in results)  # one creation request carried them
    [entry] = json.loads(state.read_text())["batches"]
    assert entry["id"] == batch_id and entry["via"] == "look-up"
    assert entry["status"] == "collected" and entry["requests"] == 4
    assert seen[0] == "resumed" and seen[-1] == "ended" and "submitted" not in seen


def started(records: Records) -> list[str]:
    """The ledger keys recorded as started and not stored since (possibly paid)."""
    return [key for (key,) in records._all("SELECT key FROM started")]


def test_a_batch_that_could_not_be_looked_up_is_looked_up_again_by_the_next_pass(
    records: Records, tmp_path: Path
) -> None:
    once = iter([Fault.drop_reply()])
    listing = threading.Event()  # set: the list endpoint works again

    def list_faults(n: int) -> Fault | None:  # every try fails, the SDK's retries too
        return None if listing.is_set() else Fault.server_error(retry_after=0.01)

    state = tmp_path / "s.json"
    todo = calls(3)
    with FakeAnthropic(
        echo, faults=lambda b, n: next(once, None), list_faults=list_faults
    ) as server:
        first = run(server, records, state, todo)
        # the reply was lost and the look-up failed: the batch may exist, so none is sent again
        assert len(server.batch_creates()) == 1 and len(server.batch_lists()) == 3
        assert all(r.error and r.error.startswith("batch creation unresolved: ") for r in first)
        assert all(retryable(r.error or "") for r in first)
        [entry] = json.loads(state.read_text())["batches"]
        assert entry["status"] == "creating" and entry["posts"] == entry["counted"] == 1
        second = run(server, records, state, todo)  # the next pass, the look-up failing still
        assert len(server.batch_creates()) == 1
        unresolved = "batch creation unresolved: the look-up failed: InternalServerError"
        assert all(r.error and r.error.startswith(unresolved) for r in second)
        assert all(retryable(r.error or "") for r in second)
        assert sorted(started(records)) == sorted(r.key for r in first)  # possibly paid
        listing.set()
        third = run(server, records, state, todo)  # the next pass, or a resume
        assert len(server.batch_creates()) == 1 and len(server.batches) == 1
        [batch_id] = server.batches
    assert [r.text for r in third] == [f"answer to question {k}" for k in range(3)]
    assert all(r.error is None for r in records.responses().values())
    assert not started(records)  # collected under the intent's id: not possibly paid
    # one creation request carried each call
    assert [tuple(r) for r in records._all("SELECT SUM(attempts) FROM calls")] == [(3,)]
    [entry] = json.loads(state.read_text())["batches"]
    assert entry["id"] == batch_id and entry["via"] == "look-up"
    assert entry["status"] == "collected"


def test_a_creation_refused_for_bad_credentials_leaves_no_intent_to_look_up(
    records: Records, tmp_path: Path
) -> None:
    once = iter([Fault.authentication()])
    state = tmp_path / "s.json"
    with FakeAnthropic(echo, faults=lambda body, n: next(once, None)) as server:
        with pytest.raises(AuthenticationFailed):
            run(server, records, state, calls(2))
        [entry] = json.loads(state.read_text())["batches"]
        assert entry["status"] == "not_created" and not started(records)
        results = run(server, records, state, calls(2))  # with the key fixed
        # nothing to look up (it would have adopted any other batch of two requests)
        assert len(server.batch_creates()) == 2 and not server.batch_lists()
    assert all(r.error is None for r in results)
    entries = json.loads(state.read_text())["batches"]
    assert [e["status"] for e in entries] == ["not_created", "collected"]


def test_two_subjects_losing_their_replies_each_get_their_own_batch(
    records: Records, tmp_path: Path
) -> None:
    both_made = threading.Event()  # the replies are dropped once both batches exist

    def plan(body: dict, n: int) -> Fault | None:  # requests 0 and 1: the two creations
        return Fault.drop_reply(both_made) if creates(body) and n < 2 else None

    folder = tmp_path / "batches"
    # batches end at their first retrieval: each runner sees both end, the other's included,
    # rather than stopping once its own answers are in
    with FakeAnthropic(echo, faults=plan, batch_polls=0) as server:

        async def both():
            a = runner(server, records, folder / "a.json").run(calls(3, "a"))
            b = runner(server, records, folder / "b.json").run(calls(3, "b"))
            return await asyncio.gather(a, b)

        out: list = []
        worker = threading.Thread(target=lambda: out.append(asyncio.run(both())))
        worker.start()
        guard = time.monotonic() + HANG_S
        while len(server.batches) < 2:
            assert time.monotonic() < guard and worker.is_alive()
            time.sleep(0.01)
        both_made.set()
        worker.join(HANG_S)
        assert len(server.batch_creates()) == 2 and len(server.batches) == 2
    [(a, b)] = out
    assert [r.text for r in a] == [f"answer to question {k} about a" for k in range(3)]
    assert [r.text for r in b] == [f"answer to question {k} about b" for k in range(3)]
    own = []
    for name in ("a", "b"):  # each adopted both; the results told which one was its own
        entries = json.loads((folder / f"{name}.json").read_text())["batches"]
        assert sorted(e["status"] for e in entries) == ["collected", "foreign"], entries
        own += [e["id"] for e in entries if e["status"] == "collected"]
    assert sorted(own) == sorted(server.batches)


KILLED = """
import asyncio, sys
from agents.batches import BatchRunner
from agents.client import Endpoint
from orchestrator.records import Records
from tests.agents.test_batches import calls

url, state, db = sys.argv[1:]
runner = lambda: BatchRunner(Endpoint(base_url=url, api_key="k"), Records(db), "sha", state)
asyncio.run(runner().run(calls(3)))
"""


def test_a_process_killed_before_the_creation_reply_resumes_without_a_second_batch(
    records: Records, tmp_path: Path
) -> None:
    held = threading.Event()
    state = tmp_path / "s.json"
    with FakeAnthropic(echo, faults=lambda body, n: Fault.hold(held) if n == 0 else None) as server:
        args = [server.url, str(state), str(tmp_path / "killed.sqlite")]
        proc = subprocess.Popen([sys.executable, "-c", KILLED, *args], cwd=ROOT)
        guard = time.monotonic() + HANG_S
        while not server.batches:
            assert time.monotonic() < guard and proc.poll() is None
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(HANG_S)
        held.set()
        [entry] = json.loads(state.read_text())["batches"]
        assert entry["status"] == "creating" and entry["posts"] == 1  # as the kill left it
        seen: list[str] = []
        results = run(server, records, state, calls(3), observe=lambda e, s: seen.append(e))
        assert len(server.batch_creates()) == 1 and len(server.batches) == 1
    assert [r.text for r in results] == [f"answer to question {k}" for k in range(3)]
    [entry] = json.loads(state.read_text())["batches"]
    assert entry["status"] == "collected" and entry["via"] == "look-up"
    assert seen[0] == "resumed"


def test_an_intent_whose_batch_never_came_is_created_anew(records: Records, tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    todo = calls(2)
    with FakeAnthropic(echo) as server:
        keys = [runner(server, records, state).key(c) for c in todo]
        # what a process killed before its creation request reached the API leaves
        intent = {
            "status": "creating",
            "calls": {k: c.spec.item for k, c in zip(keys, todo, strict=True)},
        }
        intent |= {"intent": "x", "requests": 2, "intended": utc_stamp(), "posts": 1}
        state.write_text(json.dumps({"batches": [intent]}))
        results = run(server, records, state, todo)
        assert len(server.batch_creates()) == 1 and len(server.batch_lists()) == 1
    assert all(r.error is None and r.attempts == 1 for r in results)
    entries = json.loads(state.read_text())["batches"]
    assert [e["status"] for e in entries] == ["not_created", "collected"]


def test_a_seeded_share_of_failed_results_is_retried_by_the_next_pass(
    records: Records, tmp_path: Path
) -> None:
    state = tmp_path / "s.json"
    with FakeAnthropic(flaky_results(echo, 0.3, seed=3)) as server:
        first = run(server, records, state, calls(20))
        failed = sum(r.error is not None for r in first)
        second = run(server, records, state, calls(20))
        sizes = [len(s.body["requests"]) for s in server.batch_creates()]
    assert 0 < failed < 20 and sizes[:2] == [20, failed]
    assert sum(r.error is not None for r in second) < failed
    assert all(r.cached for r, f in zip(second, first, strict=True) if f.error is None)
