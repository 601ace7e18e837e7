"""The batcher, in process, on the tiny model: grouping, per-request limits, counters."""

from __future__ import annotations

import asyncio

import pytest
import torch

from tests.fakes.tiny_model import build_tiny_model
from truesight.generate import Batcher, GenRequest, Sampling
from truesight.model import LoadedModel, load_model


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return load_model(str(build_tiny_model(tmp_path_factory.mktemp("tiny"))), device="cpu")


def test_load_model_reads_a_local_directory(loaded: LoadedModel) -> None:
    assert loaded.name.startswith("tiny")
    assert loaded.context_length == 256
    assert not loaded.model.training
    assert (loaded.device.type, loaded.dtype) == ("cpu", torch.float32)


def test_sampling_settings_group_requests() -> None:
    assert Sampling(0.0, top_p=0.5).group_key() == Sampling(0.0).group_key()
    assert Sampling(0.7).group_key() != Sampling(0.7, top_p=0.9).group_key()
    assert Sampling(0.0).generate_kwargs()["do_sample"] is False
    assert Sampling(0.7).generate_kwargs()["top_k"] == 0  # no hidden top-k of 50


def test_batcher_runs_one_generate_per_sampling_group(loaded: LoadedModel) -> None:
    ids = loaded.tokenizer("one two three")["input_ids"]
    greedy = [GenRequest(ids[: n + 1], max_tokens=m) for n, m in enumerate([3, 7, 5, 1])]
    sampled = [GenRequest(ids, max_tokens=4, sampling=Sampling(0.7)) for _ in range(2)]

    async def serve_all():
        batcher = Batcher(loaded, max_batch=16)
        try:
            return await asyncio.gather(*(batcher.submit(r) for r in greedy + sampled)), batcher
        finally:
            await batcher.aclose()

    results, batcher = asyncio.run(serve_all())
    assert batcher.stats.batches_run == 2
    assert batcher.stats.requests_served == 6 and batcher.stats.max_batch_seen == 4
    for request, result in zip(greedy + sampled, results, strict=True):
        # The tiny model never emits EOS, so every reply runs to its own limit.
        assert result.output_tokens == request.max_tokens
        assert result.stop_reason == "max_tokens"
        assert result.input_tokens == len(request.input_ids)


def test_batcher_respects_max_batch(loaded: LoadedModel) -> None:
    ids = loaded.tokenizer("hello")["input_ids"]

    async def serve_all():
        batcher = Batcher(loaded, max_batch=2)
        try:
            await asyncio.gather(*(batcher.submit(GenRequest(ids, max_tokens=2)) for _ in range(5)))
            return batcher.stats
        finally:
            await batcher.aclose()

    stats = asyncio.run(serve_all())
    assert stats.batches_run == 3 and stats.max_batch_seen == 2
