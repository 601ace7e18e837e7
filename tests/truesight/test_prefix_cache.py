"""The worker's prompt cache: `cache_control` breakpoints, `usage` as the API reports it, greedy
text unchanged by the cache, entries unharmed by the generations that read them, the LRU budget."""

from __future__ import annotations

import uuid

import anthropic
import pytest
import torch
from transformers import DynamicCache

from tests.fakes.tiny_model import build_tiny_model
from tests.truesight.workers import Worker
from truesight.constrain import compile_tool_input
from truesight.generate import GenRequest, run_group
from truesight.model import LoadedModel, load_model
from truesight.prefix_cache import PrefixCache
from truesight.prompt import build_prompt
from truesight.wire import MessagesRequest

EPHEMERAL = {"type": "ephemeral"}


def _system(marked: bool) -> list[dict]:
    # Unique per test run, so that no other test's request has cached it already.
    text = f"You are judge {uuid.uuid4().hex[:8]}. Read the answer and say if it is right. " * 3
    block = {"type": "text", "text": text}
    return [{**block, "cache_control": EPHEMERAL} if marked else block]


def _ask(client: anthropic.Anthropic, system: list[dict], question: str) -> anthropic.types.Message:
    return client.messages.create(
        model="tiny",
        max_tokens=10,
        system=system,
        messages=[{"role": "user", "content": question}],
        extra_body={"temperature": 0.0},
    )


def test_a_shared_marked_system_prompt_is_written_once_then_read(worker: Worker) -> None:
    client = worker.client()
    marked = _system(marked=True)
    plain = [{k: v for k, v in marked[0].items() if k != "cache_control"}]
    uncached = [_ask(client, plain, q) for q in ("Is 2+2=4?", "Is the sky green?")]
    first = _ask(client, marked, "Is 2+2=4?")
    second = _ask(client, marked, "Is the sky green?")
    again = _ask(client, marked, "Is the sky green?")

    written = first.usage.cache_creation_input_tokens
    assert written > 0 and first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == written
    assert second.usage.cache_creation_input_tokens == 0
    # As on the API: input_tokens counts only what was neither read nor written.
    for reply, base in zip((first, second), uncached, strict=True):
        u = reply.usage
        assert u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens == (
            base.usage.input_tokens
        )
        assert base.usage.cache_read_input_tokens == base.usage.cache_creation_input_tokens == 0
    assert [first.content[0].text, second.content[0].text] == [r.content[0].text for r in uncached]
    # The second generation extended the cached prefix; the entry itself is unchanged.
    assert again.content[0].text == second.content[0].text
    assert again.usage == second.usage
    assert worker.health()["prefix_cache"]["hits"] >= 2


def test_an_agents_previous_turns_are_read_from_the_cache(worker: Worker) -> None:
    client = worker.client()
    system = _system(marked=True)
    turn1 = [{"role": "user", "content": [{"type": "text", "text": "Item 1: ok?"}]}]
    turn1[0]["content"][0]["cache_control"] = EPHEMERAL
    first = client.messages.create(
        model="tiny", max_tokens=6, system=system, messages=turn1, extra_body={"temperature": 0}
    )
    turn2 = [
        {"role": "user", "content": [{"type": "text", "text": "Item 1: ok?"}]},
        {"role": "assistant", "content": first.content[0].text or "yes"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Item 2?", "cache_control": EPHEMERAL}],
        },
    ]
    second = client.messages.create(
        model="tiny", max_tokens=6, system=system, messages=turn2, extra_body={"temperature": 0}
    )
    # Everything up to turn 1's breakpoint is read; the new turn is written.
    prompt1 = first.usage.cache_creation_input_tokens + first.usage.cache_read_input_tokens
    assert second.usage.cache_read_input_tokens == prompt1
    assert second.usage.cache_creation_input_tokens > 0


def test_more_than_four_breakpoints_are_refused(worker: Worker) -> None:
    blocks = [{"type": "text", "text": f"part {i}", "cache_control": EPHEMERAL} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4 blocks with cache_control"):
        worker.client().messages.create(
            model="tiny", max_tokens=4, messages=[{"role": "user", "content": blocks}]
        )


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return load_model(str(build_tiny_model(tmp_path_factory.mktemp("tiny"))), device="cpu")


def _request(loaded: LoadedModel, system: str, question: str, mark_question: bool) -> GenRequest:
    user = {"type": "text", "text": question}
    if mark_question:
        user["cache_control"] = EPHEMERAL
    body = {
        "model": "tiny",
        "max_tokens": 8,
        "system": [{"type": "text", "text": system, "cache_control": EPHEMERAL}],
        "messages": [{"role": "user", "content": [user]}],
    }
    prompt = build_prompt(loaded.tokenizer, MessagesRequest.model_validate(body))
    return GenRequest(prompt.input_ids, max_tokens=8, cache_points=prompt.cache_points)


def test_a_breakpoint_is_a_token_prefix_ending_with_its_block(loaded: LoadedModel) -> None:
    request = _request(loaded, "Judge the answers carefully.", "Is it right?", True)
    first, second = request.cache_points
    assert loaded.tokenizer.decode(request.input_ids[:first]).endswith(
        "Judge the answers carefully."
    )
    assert loaded.tokenizer.decode(request.input_ids[:second]).endswith("Is it right?")


def test_rows_with_cached_prefixes_of_different_lengths_share_one_generate(
    loaded: LoadedModel,
) -> None:
    store = PrefixCache(budget_bytes=2**26)
    requests = [
        _request(loaded, "Short system.", "What is one plus one?", True),
        _request(loaded, "A much longer system prompt, " * 6, "Hi", False),
        _request(loaded, "Short system.", "And two plus two?", False),
    ]
    plain = [run_group(loaded, [r])[0] for r in requests]
    run_group(loaded, requests[:2], store)  # caches every breakpoint of the first two
    batched = run_group(loaded, requests, store)
    assert [r.text for r in batched] == [r.text for r in plain]
    assert [r.cache_read_tokens > 0 for r in batched] == [True, True, True]
    assert batched[0].cache_read_tokens > batched[2].cache_read_tokens  # its own longer prefix


def test_a_forced_tool_call_from_a_cached_prefix_is_the_same_call(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The scripted judge's shape: a forced tool, its instruction rendered after the system
    prompt; a marked tool caches through it, and constrained decoding continues from the cache."""
    path = build_tiny_model(tmp_path_factory.mktemp("tiny-long"), context_length=1024)
    loaded = load_model(str(path), device="cpu")
    tool = {
        "name": "record_verdict",
        "description": "Record a verdict.",
        "input_schema": {
            "type": "object",
            "properties": {"verdict": {"type": "string", "enum": ["right", "wrong"]}},
            "required": ["verdict"],
        },
    }
    system = [{"type": "text", "text": "Judge the answer.", "cache_control": EPHEMERAL}]
    body = {
        "model": "tiny",
        "max_tokens": 48,
        "temperature": 0.0,
        "system": system,
        "tools": [{**tool, "cache_control": EPHEMERAL}],
        "tool_choice": {"type": "tool", "name": "record_verdict"},
        "messages": [{"role": "user", "content": "Is 2+2=4?"}],
    }
    prompt = build_prompt(loaded.tokenizer, MessagesRequest.model_validate(body))
    assert len(prompt.cache_points) == 2  # the system text; the tool instruction after it
    constraint = compile_tool_input(loaded, prompt.forced_tool, prompt.prefill)
    request = GenRequest(
        prompt.input_ids, 48, constraint=constraint, cache_points=prompt.cache_points
    )
    store = PrefixCache(budget_bytes=2**26)
    base, first, second = (run_group(loaded, [request], s)[0] for s in (None, store, store))
    assert second.cache_read_tokens == first.cache_write_tokens == prompt.cache_points[-1]
    # (a random model may pad a schema-valid input with whitespace up to max_tokens)
    assert (first.text, first.stop_reason) == (second.text, second.stop_reason)
    assert (first.text, first.stop_reason) == (base.text, base.stop_reason)
    assert first.text.startswith("{")


def _kv(tokens: int) -> DynamicCache:
    """A two-layer cache of `tokens` tokens: 2 layers x (k, v) x 4 x tokens x float32."""
    layer = (torch.randn(1, 1, tokens, 4), torch.randn(1, 1, tokens, 4))
    return DynamicCache(ddp_cache_data=[layer, layer])


def test_the_lru_evicts_the_least_recently_used_within_its_budget() -> None:
    per_token = 2 * 2 * 4 * 4
    store = PrefixCache(budget_bytes=25 * per_token)
    assert store.store([1] * 10, _kv(10)) and store.store([2] * 10, _kv(10))
    assert store.longest([1] * 12, at_most=11)[0] == 10  # touches the first entry
    assert store.store([3] * 10, _kv(10))  # over budget: the second (least recent) goes
    assert [1] * 10 in store and [2] * 10 not in store and [3] * 10 in store
    assert store.stats.bytes == 20 * per_token <= store.budget_bytes
    assert store.stats.evictions == 1
    assert not store.store([4] * 30, _kv(30))  # larger than the whole budget: not kept
    assert store.stats.entries == 2


def test_a_lookup_takes_the_longest_prefix_within_its_limit() -> None:
    store = PrefixCache(budget_bytes=2**20)
    store.store([5, 6], _kv(2))
    store.store([5, 6, 7, 8], _kv(4))
    assert store.longest([5, 6, 7, 8, 9], at_most=5)[0] == 4
    assert store.longest([5, 6, 7, 8, 9], at_most=3)[0] == 2
    assert store.longest([5, 7], at_most=5) == (0, None)
