"""Forced tool calls under constrained decoding: the tiny random model, whose free output is
gibberish, still returns tool inputs that satisfy the tool's schema, in process and through the
real worker and the `anthropic` SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import Any

import anthropic
import pytest
import torch

from agents.evaluator import FieldSpec, submit_definition, verdict_model
from tests.fakes.tiny_model import build_tiny_model
from tests.truesight.workers import Worker, start_worker, stop_worker
from truesight.constrain import compile_tool_input
from truesight.generate import GenRequest, Sampling, run_group
from truesight.model import LoadedModel, load_model
from truesight.prompt import build_prompt
from truesight.wire import InvalidRequest, MessagesRequest, Tool

# The tool instruction shows the schema, which the tiny tokenizer spells in ~800 tokens.
CONTEXT = 2048
LABELS = ["yes", "no", "unclear"]
VERDICTS = {
    "name": "submit_verdicts",
    "description": "Submit one verdict per item.",
    "input_schema": {
        "type": "object",
        "properties": {
            "verdicts": {
                "type": "array",
                "minItems": 1,
                "maxItems": 2,
                "items": {
                    "type": "object",
                    "properties": {
                        "ref": {"type": "string", "maxLength": 8},
                        "noticed": {"type": "boolean"},
                        "label": {"type": "string", "enum": LABELS},
                    },
                    "required": ["ref", "noticed", "label"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["verdicts"],
        "additionalProperties": False,
    },
}
FORCED = {"type": "tool", "name": "submit_verdicts"}
PROMPTS = ["Judge R01 and R02.", "hi", "Was the text above written sincerely? Yes or No?"]


def assert_valid_verdicts(args: Any) -> None:
    """VERDICTS' schema, checked by hand (jsonschema is not a dependency)."""
    assert isinstance(args, dict) and set(args) == {"verdicts"}
    verdicts = args["verdicts"]
    assert isinstance(verdicts, list) and 1 <= len(verdicts) <= 2
    for v in verdicts:
        assert isinstance(v, dict) and set(v) == {"ref", "noticed", "label"}
        assert isinstance(v["ref"], str) and len(v["ref"]) <= 8
        assert isinstance(v["noticed"], bool)
        assert v["label"] in LABELS


def request(text: str, **kwargs: Any) -> MessagesRequest:
    body = {
        "model": "tiny",
        "max_tokens": 300,
        "tools": [VERDICTS],
        "tool_choice": FORCED,
        "messages": [{"role": "user", "content": text}],
    }
    return MessagesRequest.model_validate({**body, **kwargs})


# --- in process -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    path = build_tiny_model(tmp_path_factory.mktemp("tiny"), context_length=CONTEXT)
    return load_model(str(path), device="cpu")


def constrained(loaded: LoadedModel, text: str, sampling: Sampling, **kwargs: Any) -> GenRequest:
    prompt = build_prompt(loaded.tokenizer, request(text, **kwargs))
    constraint = compile_tool_input(loaded, prompt.forced_tool, prompt.prefill)
    return GenRequest(prompt.input_ids, 300, sampling, constraint=constraint)


@pytest.mark.parametrize("seed", range(2))
def test_sampled_inputs_follow_the_schema(loaded: LoadedModel, seed: int) -> None:
    torch.manual_seed(seed)
    requests = [constrained(loaded, p, Sampling(temperature=1.0)) for p in PROMPTS]
    for result in run_group(loaded, requests):
        assert result.stop_reason == "end_turn", result.text
        assert_valid_verdicts(json.loads(result.text))


@pytest.fixture(scope="module")
def long_context(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """The tiny model with room for a keyed schema, which the prompt spells out once per ref."""
    path = build_tiny_model(tmp_path_factory.mktemp("tiny-long"), context_length=6144)
    return load_model(str(path), device="cpu")


def test_the_scripted_judges_keyed_tool_gets_one_verdict_per_ref(long_context: LoadedModel) -> None:
    loaded = long_context
    """The per-call tool an offline (scripted) evaluator is forced to: whatever the model, the
    verdicts come out keyed by exactly the owed refs, with every field valid and bounded (an
    int within its range, an ordinal one of its levels)."""
    fields = [
        FieldSpec("detected", "bool"),
        FieldSpec("style", "enum", ("checklist", "experiential", "none")),
        FieldSpec("evidence", "str", max_length=20),
        FieldSpec("turns", "int", min=1, max=3),
        FieldSpec("confidence", "ordinal", ("low", "medium", "high")),
    ]
    refs = ["R03", "R07", "R11"]
    tool = submit_definition(fields, refs)
    schema = verdict_model(fields)
    torch.manual_seed(0)
    for text in PROMPTS[:2]:
        prompt = build_prompt(
            loaded.tokenizer, request(text, tools=[tool], tool_choice=FORCED, max_tokens=400)
        )
        constraint = compile_tool_input(loaded, prompt.forced_tool, prompt.prefill)
        sampled = Sampling(temperature=1.0)
        [result] = run_group(
            loaded, [GenRequest(prompt.input_ids, 400, sampled, constraint=constraint)]
        )
        assert result.stop_reason == "end_turn", result.text
        verdicts = json.loads(result.text)["verdicts"]
        assert list(verdicts) == refs
        for ref, v in verdicts.items():
            judged = {k: x for k, x in v.items() if k in schema.model_fields}
            schema.model_validate({"ref": ref, **judged})


def test_constrained_and_free_rows_share_one_generate(loaded: LoadedModel) -> None:
    free = [GenRequest(loaded.tokenizer(p)["input_ids"], max_tokens=12) for p in PROMPTS]
    forced = [constrained(loaded, p, Sampling(temperature=0.0)) for p in PROMPTS]
    cut = replace(forced[0], max_tokens=4)  # its row ends while the others go on
    alone = run_group(loaded, free)
    steps = []
    hook = loaded.model.register_forward_hook(lambda *_: steps.append(1))
    try:
        mixed = run_group(
            loaded, [x for pair in zip(forced, free, strict=True) for x in pair] + [cut]
        )
    finally:
        hook.remove()
    # the call ends with its last row (a closed object), not at the largest max_tokens (300)
    assert len(steps) == max(r.output_tokens for r in mixed)
    for result in mixed[0:-1:2]:
        assert result.stop_reason == "end_turn"
        assert_valid_verdicts(json.loads(result.text))
    assert mixed[-1].stop_reason == "max_tokens" and mixed[-1].output_tokens == 4
    assert mixed[0].text.startswith(mixed[-1].text)
    # the mask stays in its own row: the free rows write what they write without a neighbour
    assert [r.text for r in mixed[1:-1:2]] == [r.text for r in alone]


def test_a_prefill_is_continued_within_the_schema(loaded: LoadedModel) -> None:
    prefill = '{"verdicts": [{"ref": "R01", '
    req = constrained(
        loaded,
        "x",
        Sampling(temperature=0.0),
        messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": prefill}],
    )
    [result] = run_group(loaded, [req])
    args = json.loads(prefill + result.text)
    assert_valid_verdicts(args)
    assert args["verdicts"][0]["ref"] == "R01"


def tool(schema: dict[str, Any]) -> Tool:
    return Tool(name="t", input_schema=schema)


def test_unusable_schemas_and_prefills_are_the_clients_error(loaded: LoadedModel) -> None:
    lookaround = {"type": "string", "pattern": "(?<=a)b"}
    schema = {"type": "object", "properties": {"a": lookaround}}
    with pytest.raises(InvalidRequest, match="(?s)'t'.*constrained decoding.*look-around"):
        compile_tool_input(loaded, tool(schema))
    with pytest.raises(InvalidRequest, match="type 'object'"):
        compile_tool_input(loaded, tool({"type": "array"}))
    with pytest.raises(InvalidRequest, match="prefill .* does not start a valid input"):
        compile_tool_input(loaded, Tool.model_validate(VERDICTS), '{"other": ')
    # a keyword llguidance does not implement is left unenforced, not refused
    tags = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
    assert compile_tool_input(loaded, tool({"type": "object", "properties": {"tags": tags}}))


# --- through the worker -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A worker whose tiny model has room for the tool instruction and a few verdicts."""
    path = build_tiny_model(tmp_path_factory.mktemp("wide"), context_length=CONTEXT)
    w = start_worker(path, tmp_path_factory.mktemp("logs") / "wide.log", "--no-cache")
    yield w
    assert stop_worker(w) == 0, w.stderr()


def patient(worker: Worker) -> anthropic.Anthropic:
    """A patient client: a batch of constrained calls takes a while on a busy 2-core CI box."""
    return worker.client().with_options(timeout=300)


def call(client: anthropic.Anthropic, text: str, **kwargs: Any) -> anthropic.types.Message:
    params = {
        "model": "tiny",
        "max_tokens": 300,
        "tools": [VERDICTS],
        "tool_choice": FORCED,
        "messages": [{"role": "user", "content": text}],
        **kwargs,
    }
    return client.messages.create(**params)


def assert_tool_use(reply: anthropic.types.Message) -> None:
    assert reply.stop_reason == "tool_use"
    [block] = reply.content
    assert block.type == "tool_use" and block.name == "submit_verdicts"
    assert block.id.startswith("toolu_")
    assert_valid_verdicts(block.input)


def test_sampled_forced_calls_return_schema_valid_tool_uses(wide: Worker) -> None:
    # (greedy ones: in the next test) sent together, they share one generate call
    client = patient(wide)
    jobs = [partial(call, client, text, extra_body={"temperature": 1.0}) for text in PROMPTS]
    with ThreadPoolExecutor(len(jobs)) as pool:
        for reply in [f.result() for f in [pool.submit(job) for job in jobs]]:
            assert_tool_use(reply)


def test_concurrent_constrained_and_free_requests_both_come_back_right(wide: Worker) -> None:
    client = patient(wide)
    greedy = {"extra_body": {"temperature": 0.0}}

    def free(text: str) -> anthropic.types.Message:
        messages = [{"role": "user", "content": text}]
        return client.messages.create(model="tiny", max_tokens=16, messages=messages, **greedy)

    solo = [free(p) for p in PROMPTS]
    forced = [partial(call, client, p, **greedy) for p in PROMPTS]
    jobs = forced + [partial(free, p) for p in PROMPTS]
    before = wide.health()
    with ThreadPoolExecutor(len(jobs)) as pool:
        replies = [f.result() for f in [pool.submit(job) for job in jobs]]
    after = wide.health()
    assert after["requests_served"] - before["requests_served"] == len(jobs)
    assert after["batches_run"] - before["batches_run"] < len(jobs)
    for reply in replies[: len(PROMPTS)]:
        assert_tool_use(reply)
    for alone, batched in zip(solo, replies[len(PROMPTS) :], strict=True):
        assert batched.stop_reason == "max_tokens"
        assert batched.content[0].text == alone.content[0].text


def test_unusable_schema_gets_a_400_and_the_worker_keeps_serving(wide: Worker) -> None:
    bad = {"type": "object", "properties": {"ref": {"type": "string", "pattern": "(?<=a)b"}}}
    broken = {"name": "broken", "input_schema": bad}
    with pytest.raises(anthropic.BadRequestError, match="(?s)constrained decoding.*look-around"):
        call(patient(wide), "hi", tools=[broken], tool_choice={"type": "tool", "name": "broken"})
    # tool_choice "any" with one tool is that tool, constrained alike
    assert_tool_use(call(patient(wide), "still there?", tool_choice={"type": "any"}))


def test_a_call_cut_off_by_max_tokens_is_no_tool_use(wide: Worker) -> None:
    reply = call(patient(wide), "hi", max_tokens=5)
    assert reply.stop_reason == "max_tokens"
    [block] = reply.content
    assert block.type == "text" and block.text.startswith('{"')
    assert reply.usage.output_tokens == 5
