"""Continuous batching, in process and over HTTP on the tiny model: rows join and leave the running
batch between decode steps, and what a row generates does not depend on its neighbours.

The tiny model (greedy, seed 0) never emits EOS, so each reply runs to its own max_tokens and the
step counts below are exact.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tests.fakes.tiny_model import build_tiny_model
from tests.truesight.test_cancel import send_and_keep_open, wait_for
from tests.truesight.workers import Worker, start_worker, stop_worker
from truesight.cancel import CancelFlag, ClientGone
from truesight.constrain import JsonConstraint, compile_tool_input
from truesight.continuous import ContinuousBatcher
from truesight.generate import GenRequest, GenResult, Sampling, run_group
from truesight.model import LoadedModel, load_model
from truesight.prefix_cache import PrefixCache
from truesight.wire import Tool

PROMPTS = ["Once upon a time", "The weather today", "hello", "one two three four five six seven"]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return load_model(str(build_tiny_model(tmp_path_factory.mktemp("tiny"))), device="cpu")


def serve(batcher: ContinuousBatcher, requests: list[GenRequest]) -> tuple[list, list[int]]:
    """Submit all at once; the results in request order and the order they came back in."""
    order: list[int] = []

    async def one(i: int, r: GenRequest) -> GenResult | BaseException:
        try:
            return await batcher.submit(r)
        except ClientGone as e:
            return e
        finally:
            order.append(i)

    async def run() -> list:
        try:
            return await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))
        finally:
            await batcher.aclose()

    return asyncio.run(run()), order


def ids(loaded: LoadedModel, text: str) -> list[int]:
    return loaded.tokenizer(text)["input_ids"]


def test_each_row_returns_what_it_would_alone_and_short_rows_return_first(
    loaded: LoadedModel,
) -> None:
    requests = [
        GenRequest(ids(loaded, p), m) for p, m in zip(PROMPTS, [40, 5, 20, 33], strict=True)
    ]
    alone = [run_group(loaded, [r])[0] for r in requests]
    batcher = ContinuousBatcher(loaded)
    results, order = serve(batcher, requests)
    for a, b in zip(alone, results, strict=True):
        assert (b.text, b.output_tokens, b.stop_reason) == (a.text, a.output_tokens, "max_tokens")
        assert b.decode_steps == b.output_tokens  # a row runs its own steps, not the longest's
    assert order == [1, 2, 3, 0]  # by length: each reply went back when its row ended
    # all four started together; the batch ran as many steps as the longest needed after its first
    assert batcher.stats.decode_steps == 40 - 1
    assert batcher.stats.max_batch_seen == 4 and batcher.stats.requests_served == 4


def test_rows_from_cached_prefixes_report_cache_use_and_generate_the_same(
    loaded: LoadedModel,
) -> None:
    shared = ids(loaded, "A long shared system prompt about judging answers carefully. " * 3)
    tails = [ids(loaded, t) for t in ("First question?", "Second, longer question here?")]
    requests = [GenRequest(shared + t, 12, cache_points=(len(shared),)) for t in tails]
    alone = [run_group(loaded, [GenRequest(r.input_ids, 12)])[0] for r in requests]
    batcher = ContinuousBatcher(loaded, prefixes=PrefixCache(budget_bytes=10**8))
    first, _ = serve(batcher, requests[:1])
    batcher = ContinuousBatcher(loaded, prefixes=batcher.prefixes)
    second, _ = serve(batcher, requests[1:])
    assert first[0].cache_write_tokens == len(shared) and first[0].cache_read_tokens == 0
    assert second[0].cache_read_tokens == len(shared)
    assert second[0].input_tokens == len(tails[1])
    assert [first[0].text, second[0].text] == [a.text for a in alone]


def test_mixed_sampling_constrained_and_stopped_rows_share_the_batch(loaded: LoadedModel) -> None:
    tool = Tool(
        name="grade",
        input_schema={
            "type": "object",
            "properties": {"score": {"type": "integer", "minimum": 0, "maximum": 9}},
            "required": ["score"],
            "additionalProperties": False,
        },
    )
    constraint: JsonConstraint = compile_tool_input(loaded, tool)
    free = GenRequest(ids(loaded, PROMPTS[0]), 30)
    forced = GenRequest(ids(loaded, PROMPTS[1]), 64, constraint=constraint)
    [alone] = run_group(loaded, [free])
    [forced_alone] = run_group(loaded, [forced])
    stop = alone.text[10:13]  # a stop sequence the free reply is known to contain
    requests = [
        free,
        forced,
        GenRequest(ids(loaded, PROMPTS[2]), 9, sampling=Sampling(0.8, top_p=0.9, top_k=20)),
        GenRequest(ids(loaded, PROMPTS[0]), 30, stop_sequences=(stop,)),
    ]
    results, _ = serve(ContinuousBatcher(loaded), requests)
    assert results[0].text == alone.text
    assert json.loads(results[1].text)["score"] in range(10)
    assert (results[1].text, results[1].stop_reason) == (forced_alone.text, "end_turn")
    assert results[2].output_tokens == 9
    assert results[3].stop_reason == "stop_sequence" and results[3].stop_sequence == stop
    assert results[3].text == alone.text[: alone.text.index(stop)]


def test_a_gone_row_leaves_and_its_neighbours_are_unchanged(loaded: LoadedModel) -> None:
    gone = CancelFlag()
    gone.set()
    keep = GenRequest(ids(loaded, PROMPTS[1]), 25)
    [alone] = run_group(loaded, [keep])
    batcher = ContinuousBatcher(loaded)
    results, _ = serve(batcher, [GenRequest(ids(loaded, PROMPTS[0]), 4000, cancel=gone), keep])
    assert isinstance(results[0], ClientGone)
    assert results[1].text == alone.text
    assert batcher.stats.requests_cancelled == 1 and batcher.stats.decode_steps == 25 - 1


# --- over HTTP --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    tmp = tmp_path_factory.mktemp("continuous")
    model = build_tiny_model(tmp / "tiny", context_length=8192)
    w = start_worker(model, tmp / "worker.log", "--no-cache")
    yield w
    assert stop_worker(w) == 0, w.stderr()


def test_a_short_request_sent_while_a_long_one_runs_joins_it_and_returns_first(
    roomy: Worker,
) -> None:
    assert roomy.health()["batching"] == "continuous"
    body = {
        "model": "tiny",
        "max_tokens": 4000,
        "temperature": 0.0,
        "messages": [{"role": "user", "content": "Write a long story."}],
    }
    before = roomy.health()
    long = send_and_keep_open(roomy.url, body)
    try:
        wait_for(lambda: roomy.health()["rows_running"] == 1, "the long request to start")
        reply = roomy.client().messages.create(
            model="tiny", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.usage.output_tokens == 8
        during = roomy.health()
        # the short one ran beside the long one, which is still running after it returned
        assert during["max_batch_seen"] >= 2 and during["rows_running"] == 1
        assert during["requests_served"] - before["requests_served"] == 1
        assert during["decode_steps"] - before["decode_steps"] < 4000
    finally:
        long.close()
    wait_for(
        lambda: roomy.health()["requests_cancelled"] - before["requests_cancelled"] == 1,
        "the long request to be cancelled",
    )
