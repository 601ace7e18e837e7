"""Truesight probes: batching exactness, readouts against a direct computation, cache, HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import torch

from tests.fakes.tiny_model import CONTEXT_LENGTH
from tests.truesight.workers import Worker
from truesight.model import LoadedModel, load_model
from truesight.probes import author, inputs
from truesight.probes.batch import ProbeStats, Row, buckets, score_rows
from truesight.probes.cache import ResultCache
from truesight.probes.inputs import ProbeInput
from truesight.probes.prefill import prefix_suffix_logprobs
from truesight.probes.registry import PROBES
from truesight.probes.runner import ProbeRunner

SHORT = "Monday night"
LONG = "The quick brown fox jumps over the lazy dog. " * 15
CONTEXT = "You are a helpful assistant. The user asks a question."


@pytest.fixture(scope="module")
def loaded(model_dir: Path) -> LoadedModel:
    return load_model(str(model_dir), device="cpu")


def ids(loaded: LoadedModel, text: str) -> list[int]:
    return loaded.tokenizer(text, add_special_tokens=False)["input_ids"]


def full_logprobs(loaded: LoadedModel, seq: list[int]) -> torch.Tensor:
    """log_softmax over the whole sequence from the model's own forward: the reference."""
    with torch.inference_mode():
        logits = loaded.model(torch.tensor([seq])).logits[0].float()
    return torch.log_softmax(logits, dim=-1)


def test_buckets_sort_by_length_and_cap_padded_tokens() -> None:
    assert buckets([3, 150, 5, 4], max_tokens=300) == [[0, 3, 2], [1]]
    assert buckets([10, 10], max_tokens=5) == [[0], [1]]  # an over-budget row still runs alone


def test_batched_equals_solo_for_either_padding(loaded: LoadedModel) -> None:
    short, long = ids(loaded, SHORT), ids(loaded, LONG)
    assert len(short) <= 3 and len(long) >= 150
    rows = [Row(short, 1, (5, 7)), Row(long, 1, (5, 7)), Row(short + long[:40], 2, (9,))]
    solo = [score_rows(loaded, [r], ProbeStats())[0] for r in rows]
    for side in ("right", "left"):
        batched = score_rows(loaded, rows, ProbeStats(), padding_side=side)
        for a, b in zip(solo, batched, strict=True):
            assert torch.allclose(a.token_logprobs, b.token_logprobs, atol=1e-4)
            assert torch.allclose(a.final_logprobs, b.final_logprobs, atol=1e-4)


def test_token_logprobs_match_the_models_full_log_softmax(loaded: LoadedModel) -> None:
    seq = ids(loaded, LONG)
    [scored] = score_rows(loaded, [Row(seq, 1, (3,))], ProbeStats())
    ref = full_logprobs(loaded, seq)
    expected = ref[:-1].gather(1, torch.tensor(seq[1:])[:, None]).squeeze(1)
    assert torch.allclose(scored.token_logprobs, expected, atol=1e-4)
    assert torch.allclose(scored.final_logprobs, ref[-1, [3]], atol=1e-4)


@pytest.mark.parametrize("context", ["", CONTEXT])
def test_surprisal_equals_a_direct_computation(loaded: LoadedModel, context: str) -> None:
    [result] = ProbeRunner(loaded).run(PROBES["surprisal"], [ProbeInput(LONG, context)], {})
    prefix, text = ids(loaded, context) if context else [], ids(loaded, LONG)
    ref = full_logprobs(loaded, prefix + text)
    first = len(prefix) if prefix else 1  # no BOS, no context: the first token is not scored
    targets = torch.tensor((prefix + text)[first:])
    nll = -ref[first - 1 : -1].gather(1, targets[:, None]).squeeze(1)
    assert result["tokens"] == len(nll) == len(text) - (0 if prefix else 1)
    assert result["mean_nll"] == pytest.approx(float(nll.mean()), abs=1e-4)
    assert result["perplexity"] == pytest.approx(float(nll.mean().exp()), rel=1e-4)
    assert result["max"] == pytest.approx(float(nll.max()), abs=1e-4)
    assert result["p90"] == pytest.approx(float(torch.quantile(nll, 0.9)), abs=1e-4)
    spans = result["top_spans"]
    assert len(spans) == 5 and spans[0]["surprisal"] == pytest.approx(result["max"])
    assert [s["surprisal"] for s in spans] == sorted((s["surprisal"] for s in spans), reverse=True)
    for s in spans:
        assert s["text"] == LONG[s["start"] : s["end"]] and s["text"]


def test_surprisal_scores_the_first_token_after_a_bos(loaded, monkeypatch) -> None:
    bos = loaded.tokenizer.bos_token_id
    monkeypatch.setattr(inputs, "bos_prefix", lambda tok: [bos])
    [result] = ProbeRunner(loaded).run(PROBES["surprisal"], [ProbeInput(SHORT)], {"top_k": 1})
    seq = [bos, *ids(loaded, SHORT)]
    nll = -full_logprobs(loaded, seq)[:-1].gather(1, torch.tensor(seq[1:])[:, None]).squeeze(1)
    assert result["tokens"] == len(seq) - 1
    assert result["mean_nll"] == pytest.approx(float(nll.mean()), abs=1e-4)


def test_shared_prefill_equals_text_plus_suffix(loaded: LoadedModel) -> None:
    prefixes = [ids(loaded, SHORT), ids(loaded, LONG), ids(loaded, CONTEXT)]
    suffixes = [ids(loaded, "\n\nThe author of the text above is"), ids(loaded, " so")]
    query = [5, 40, 300]
    shared = prefix_suffix_logprobs(loaded, prefixes, suffixes, query, ProbeStats())
    naive = prefix_suffix_logprobs(loaded, prefixes, suffixes, query, ProbeStats(), naive=True)
    assert shared.shape == (3, 2, 3)
    assert torch.allclose(shared, naive, atol=1e-4)


def test_author_is_calibrated_by_the_null_text(loaded: LoadedModel) -> None:
    params = {"suffixes": ["\n\nThe author of the text above is", "\n\nThe writer was"]}
    items = [ProbeInput(SHORT), ProbeInput(LONG, CONTEXT)]
    results = ProbeRunner(loaded).run(PROBES["author"], items, params)
    [null] = ProbeRunner(loaded).run(PROBES["author"], [ProbeInput("N/A")], params)
    for r in results:
        assert set(r["attributes"]) == set(author.DEFAULT_PAIRS)
        for pair, value in r["attributes"].items():
            assert value == pytest.approx(r["uncalibrated"][pair] - r["null"][pair], abs=1e-9)
            assert r["null"][pair] == pytest.approx(null["uncalibrated"][pair], abs=1e-4)
    assert null["attributes"] == pytest.approx(dict.fromkeys(author.DEFAULT_PAIRS, 0.0), abs=1e-4)


def test_followup_reads_yes_minus_no(loaded: LoadedModel) -> None:
    # The tiny tokenizer splits " Yes" and " No" alike (" " first): words it knows stand in.
    q, params = "Is this sincere?", {"questions": ["Is this sincere?"], "yes": " one", "no": " two"}
    [result] = ProbeRunner(loaded).run(PROBES["followup"], [ProbeInput(SHORT)], params)
    ref = full_logprobs(loaded, ids(loaded, SHORT) + ids(loaded, f"\n\nQuestion: {q}\nAnswer:"))
    yes, no = ids(loaded, " one")[0], ids(loaded, " two")[0]
    assert result["questions"][q] == pytest.approx(float(ref[-1, yes] - ref[-1, no]), abs=1e-4)


def test_cache_answers_without_a_forward_pass(loaded: LoadedModel, tmp_path: Path) -> None:
    runner = ProbeRunner(loaded, ResultCache(tmp_path / "cache.sqlite"))
    items = [ProbeInput(SHORT), ProbeInput(LONG, CONTEXT)]
    first = runner.run(PROBES["surprisal"], items, {})
    passes = runner.stats.forward_passes
    assert passes > 0
    assert runner.run(PROBES["surprisal"], items, {}) == first
    assert runner.stats.forward_passes == passes and runner.stats.cache_hits == 2
    # Explicit defaults are the same parameters; a changed one is not.
    assert runner.run(PROBES["surprisal"], items[:1], {"top_k": 5}) == first[:1]
    assert runner.stats.forward_passes == passes
    runner.run(PROBES["surprisal"], items[:1], {"top_k": 2})
    assert runner.stats.forward_passes == passes + 1
    # Another worker on the same file (a restart) finds the results too.
    again = ProbeRunner(loaded, ResultCache(tmp_path / "cache.sqlite"))
    assert again.run(PROBES["surprisal"], items, {}) == first
    assert again.stats.forward_passes == 0


# --- through the real worker process ---------------------------------------------------------


def post(worker: Worker, name: str, body: dict) -> httpx.Response:
    return httpx.post(f"{worker.url}/v1/probes/{name}", json=body, timeout=60)


def test_probes_are_listed_with_the_model(worker: Worker, model_dir: Path) -> None:
    body = httpx.get(f"{worker.url}/v1/probes", timeout=10).json()
    assert body["model"] == model_dir.name
    names = [p["name"] for p in body["probes"]]
    assert names == ["surprisal", "author", "followup", "linear", "tokens"]
    by_name = {p["name"]: p for p in body["probes"]}
    assert by_name["surprisal"]["params"] == {"top_k": 5}
    assert by_name["author"]["params"]["pairs"] == author.DEFAULT_PAIRS
    assert all(p["description"] for p in body["probes"])


def test_probes_over_http_in_order_and_cached(worker: Worker, model_dir: Path) -> None:
    texts = [LONG, SHORT, "Monday Tuesday"]
    body = {"texts": texts, "contexts": ["", CONTEXT, ""], "params": {"top_k": 2}}
    resp = post(worker, "surprisal", body)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert (
        out["model"] == model_dir.name and out["probe"] == "surprisal" and len(out["results"]) == 3
    )
    assert all(len(r["top_spans"]) == min(2, r["tokens"]) for r in out["results"])
    assert out["results"][0]["tokens"] > out["results"][2]["tokens"]
    before = worker.health()["probe_forward_passes"]
    assert post(worker, "surprisal", body).json() == out
    assert worker.health()["probe_forward_passes"] == before

    author_out = post(worker, "author", {"texts": texts}).json()
    assert author_out["model"] == model_dir.name and len(author_out["results"]) == 3
    assert set(author_out["results"][0]["attributes"]) == set(author.DEFAULT_PAIRS)
    params = {"questions": ["Sure?"], "yes": " one", "no": " two"}
    follow = post(worker, "followup", {"texts": texts[:1], "params": params})
    assert set(follow.json()["results"][0]["questions"]) == {"Sure?"}


@pytest.mark.parametrize(
    ("name", "body", "status", "message"),
    [
        ("surprisal", {"texts": []}, 400, "texts"),
        ("surprisal", {"texts": ["ok", "word " * CONTEXT_LENGTH]}, 400, "texts[1] is too long"),
        ("author", {"texts": ["a b c " * CONTEXT_LENGTH]}, 400, "texts[0] is too long"),
        ("nope", {"texts": ["hi"]}, 404, "unknown probe 'nope'"),
        ("author", {"texts": ["hi"], "params": {"pairs": ["sincere_vs_evil"]}}, 400, "'evil'"),
        ("surprisal", {"texts": ["a", "b"], "contexts": ["x"]}, 400, "contexts has 1 items"),
        ("surprisal", {"texts": ["hi"], "params": {"top_q": 1}}, 400, "params.top_q"),
        ("surprisal", {"texts": ["hi"], "context": ["x"]}, 400, "context"),
        (
            "followup",
            {"texts": ["hi"], "params": {"yes": " one", "no": " once"}},
            400,
            "start with the same token",
        ),
    ],
)
def test_malformed_probe_requests_get_clear_errors(worker, name, body, status, message) -> None:
    resp = post(worker, name, body)
    assert resp.status_code == status, resp.text
    error = resp.json()
    assert error["type"] == "error" and message in error["error"]["message"]
    assert post(worker, "surprisal", {"texts": [SHORT]}).status_code == 200


# --- dynamic batching across requests --------------------------------------------------------


def test_concurrent_requests_are_merged_into_one_batch(loaded: LoadedModel) -> None:
    """Requests that queue while the model is busy run as one batch; each gets its own answer."""
    import asyncio
    import threading

    from truesight.generate import Batcher
    from truesight.probes.queue import ProbeQueue
    from truesight.wire import InvalidRequest

    runner = ProbeRunner(loaded)
    texts = [SHORT, LONG, "Monday Tuesday Wednesday", LONG[:90], "night and day"]
    solo = [runner.run(PROBES["surprisal"], [ProbeInput(t)], {"top_k": 3})[0] for t in texts]
    passes_solo = runner.stats.forward_passes

    async def scenario():
        batcher = Batcher(loaded)
        queue = ProbeQueue(runner, batcher)
        gate = threading.Event()
        busy = asyncio.create_task(batcher.run_exclusive(gate.wait))  # the model thread is busy
        await asyncio.sleep(0.05)
        good = [
            asyncio.create_task(queue.submit(PROBES["surprisal"], [ProbeInput(t)], {"top_k": 3}))
            for t in texts
        ]
        too_long = [ProbeInput("word " * CONTEXT_LENGTH)]
        bad = asyncio.create_task(queue.submit(PROBES["surprisal"], too_long, {"top_k": 3}))
        other = asyncio.create_task(queue.submit(PROBES["surprisal"], [ProbeInput(SHORT)], {}))
        await asyncio.sleep(0.05)  # all seven are waiting now
        gate.set()
        await busy
        results = await asyncio.gather(*good)
        with pytest.raises(InvalidRequest, match=r"texts\[0\] is too long"):
            await bad
        await other
        await queue.aclose()
        await batcher.aclose()
        return results, queue.stats

    results, stats = asyncio.run(scenario())
    assert stats.requests == 7
    assert stats.batches == 2  # the six with top_k=3 together, the one with other params alone
    assert stats.max_requests_merged == 6
    for mine, alone in zip(results, solo, strict=True):
        assert mine[0]["tokens"] == alone["tokens"]
        assert mine[0]["mean_nll"] == pytest.approx(alone["mean_nll"], abs=1e-4)
        assert [s["text"] for s in mine[0]["top_spans"]] == [s["text"] for s in alone["top_spans"]]
    # Five texts in one batch took fewer forward passes than five batches of one.
    assert runner.stats.forward_passes - passes_solo < len(texts)


def test_concurrent_http_clients_each_get_their_own_results(worker: Worker) -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"{SHORT} number {k}" + " and more" * k for k in range(8)]
    before = worker.health()
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda t: post(worker, "surprisal", {"texts": [t]}), texts))
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    lengths = [r.json()["results"][0]["tokens"] for r in replies]
    assert lengths == sorted(lengths) and len(set(lengths)) == len(texts)  # each its own text
    after = worker.health()
    assert after["probe_requests"] - before["probe_requests"] == len(texts)
    assert 1 <= after["probe_batches"] - before["probe_batches"] <= len(texts)


def test_a_request_whose_client_left_while_it_waited_is_dropped_unread(
    loaded: LoadedModel,
) -> None:
    """A readout request waiting behind busy work, whose client disconnects, never runs."""
    import asyncio
    import threading

    from truesight.cancel import CancelFlag, ClientGone
    from truesight.generate import Batcher
    from truesight.probes.queue import ProbeQueue

    runner = ProbeRunner(loaded)

    async def scenario():
        batcher = Batcher(loaded)
        queue = ProbeQueue(runner, batcher)
        gate = threading.Event()
        busy = asyncio.create_task(batcher.run_exclusive(gate.wait))  # the model thread is busy
        gone, stays = CancelFlag(), CancelFlag()
        left = asyncio.create_task(queue.submit(PROBES["surprisal"], [ProbeInput(LONG)], {}, gone))
        kept = asyncio.create_task(
            queue.submit(PROBES["surprisal"], [ProbeInput(SHORT)], {}, stays)
        )
        gone.set()  # its client disconnects while it waits
        gate.set()
        await busy
        with pytest.raises(ClientGone):
            await left
        result = await kept
        await queue.aclose()
        await batcher.aclose()
        return result, queue.stats

    before = runner.stats.texts_computed
    result, stats = asyncio.run(scenario())
    assert stats.requests_cancelled == 1
    assert runner.stats.texts_computed - before == 1  # only the text whose client stayed
    assert result[0]["tokens"] > 0  # the other request was served
