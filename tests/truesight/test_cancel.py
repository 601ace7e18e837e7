"""A client that leaves stops its work: a long generation whose client disconnects ends at the
next decode steps, so the request after it does not wait for tokens nobody will read.

Nothing here times anything: the worker reports the decode steps it ran and the requests it
cancelled, and the tiny model (greedy, seed 0) never ends this long request on its own before
max_tokens, so fewer steps than that can only be the cancellation.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from tests.fakes.tiny_model import build_tiny_model
from tests.limits import HANG_S
from tests.truesight.workers import Worker, start_worker, stop_worker
from truesight.cancel import CancelFlag
from truesight.generate import GenRequest, run_group
from truesight.model import LoadedModel, load_model

LONG = 4000
"""max_tokens of the request that is abandoned: minutes of CPU if it ran to its end."""


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A worker on a tiny model with room in its context for a long reply, one row at a time
    (so a second request waits in the queue)."""
    tmp = tmp_path_factory.mktemp("cancel")
    model = build_tiny_model(tmp / "tiny", context_length=8192)
    w = start_worker(model, tmp / "worker.log", "--no-cache", "--max-batch", "1")
    yield w
    assert stop_worker(w) == 0, w.stderr()


def send_and_keep_open(url: str, body: dict) -> socket.socket:
    """POST /v1/messages on a raw connection that the test closes when it chooses."""
    where = urlparse(url)
    conn = socket.create_connection((where.hostname, where.port))
    data = json.dumps(body).encode()
    head = f"POST /v1/messages HTTP/1.1\r\nHost: {where.netloc}\r\n"
    head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    conn.sendall(head.encode() + data)
    return conn


def wait_for(condition, what: str) -> None:
    guard = time.monotonic() + HANG_S  # a guard against a hang, not a speed limit
    while not condition():
        assert time.monotonic() < guard, f"gave up waiting: {what}"
        time.sleep(0.05)


def request(max_tokens: int, text: str) -> dict:
    messages = [{"role": "user", "content": text}]
    return {"model": "tiny", "max_tokens": max_tokens, "temperature": 0.0, "messages": messages}


def test_a_disconnected_clients_generation_stops(roomy: Worker) -> None:
    before = roomy.health()
    conn = send_and_keep_open(roomy.url, request(LONG, "Write a long story."))
    wait_for(lambda: roomy.health()["rows_running"] == 1, "the long request to start")
    conn.close()  # the client leaves, as `curl --max-time 1` does
    reply = roomy.client().messages.create(
        model="tiny", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.usage.output_tokens > 0
    after = roomy.health()
    assert after["requests_cancelled"] - before["requests_cancelled"] == 1
    # the short reply came after the long one stopped, not after its 4,000 steps
    assert after["decode_steps"] - before["decode_steps"] < LONG
    assert after["requests_served"] - before["requests_served"] == 1  # a gone one is not served


def test_a_request_whose_client_left_while_queued_is_dropped_too(roomy: Worker) -> None:
    """It is dropped before its batch starts when the worker saw its client leave by then, else
    at its batch's first step: either way, the two long requests cost far fewer steps than one."""
    before = roomy.health()
    running = send_and_keep_open(roomy.url, request(LONG, "Write a long story."))
    wait_for(lambda: roomy.health()["rows_running"] == 1, "the first request to start")
    queued = send_and_keep_open(roomy.url, request(LONG, "Write another long story."))
    # closed only once it waits in the queue: closed sooner, the worker may not have read it
    wait_for(lambda: roomy.health()["requests_waiting"] == 1, "the second request to queue")
    queued.close()
    running.close()
    wait_for(
        lambda: roomy.health()["requests_cancelled"] - before["requests_cancelled"] == 2,
        "both requests to be cancelled",
    )
    assert roomy.health()["decode_steps"] - before["decode_steps"] < LONG


# --- in process: the flag and a static batch ---------------------------------------------------


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return load_model(str(build_tiny_model(tmp_path_factory.mktemp("tiny"))), device="cpu")


def gone() -> CancelFlag:
    flag = CancelFlag()
    flag.set()
    return flag


def test_in_a_static_batch_a_gone_row_leaves_the_others_as_they_were(loaded: LoadedModel) -> None:
    ids = loaded.tokenizer("Once upon a time")["input_ids"]
    other = loaded.tokenizer("The weather today")["input_ids"]
    [solo] = run_group(loaded, [GenRequest(other, 40)])
    _, kept = run_group(loaded, [GenRequest(ids, 40, cancel=gone()), GenRequest(other, 40)])
    assert kept.text == solo.text and kept.output_tokens == solo.output_tokens
    # the batch ran as long as the row that still had a client needed, not longer
    assert kept.decode_steps == solo.decode_steps
    # (the gone row's own result is padding after its first token; the batcher never returns it)


def test_a_batch_whose_rows_are_all_gone_ends_at_the_first_step(loaded: LoadedModel) -> None:
    ids = loaded.tokenizer("Once upon a time")["input_ids"]
    a, b = run_group(
        loaded, [GenRequest(ids, 40, cancel=gone()), GenRequest(ids, 40, cancel=gone())]
    )
    assert a.decode_steps == b.decode_steps == 1
