"""The real worker process, driven through the real `anthropic` SDK, serving a tiny model."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic
import httpx
import pytest

from tests.fakes.tiny_model import CONTEXT_LENGTH
from tests.truesight.workers import REPO, Worker, start_worker, stop_worker

STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use"}


def ask(client: anthropic.Anthropic, text: str, **kwargs) -> anthropic.types.Message:
    """A greedy request. SDK 2.x has no `temperature` argument any more, hence extra_body."""
    params = {"model": "tiny", "max_tokens": 12, "extra_body": {"temperature": 0.0}, **kwargs}
    return client.messages.create(messages=[{"role": "user", "content": text}], **params)


def test_message_is_well_formed(worker: Worker) -> None:
    reply = ask(worker.client(), "What is the capital of France?", system="Be brief.")
    assert isinstance(reply, anthropic.types.Message)
    assert reply.id.startswith("msg_") and reply.type == "message" and reply.role == "assistant"
    assert reply.model == "tiny"
    assert [b.type for b in reply.content] == ["text"] and reply.content[0].text
    assert reply.stop_reason in STOP_REASONS
    assert reply.usage.input_tokens > 0 and 0 < reply.usage.output_tokens <= 12


def test_max_tokens_limits_the_reply(worker: Worker) -> None:
    reply = ask(worker.client(), "Count to ten.", max_tokens=5)
    assert reply.stop_reason == "max_tokens"
    assert reply.usage.output_tokens <= 5


PROMPTS = [
    "hi",
    "The quick brown fox jumps over the lazy dog.",
    "Count: one two three four five six seven eight nine ten eleven twelve.",
    "Monday",
    "Please answer with a JSON object that matches the schema.",
    "Researchers run experiments on language models to measure how often they notice things.",
    "yes",
    "Every response is judged by an evaluator who first reads the protocol.",
]


@pytest.fixture(scope="module")
def solo_and_batched(worker: Worker) -> dict:
    """The same greedy prompts sent one at a time, then all at once from 8 threads."""
    client = worker.client()
    solo = [ask(client, p, max_tokens=16) for p in PROMPTS]
    before = worker.health()
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        batched = list(pool.map(lambda p: ask(client, p, max_tokens=16), PROMPTS))
    return {"solo": solo, "batched": batched, "before": before, "after": worker.health()}


def test_concurrent_requests_are_batched(solo_and_batched: dict) -> None:
    before, after = solo_and_batched["before"], solo_and_batched["after"]
    assert all(r.stop_reason in STOP_REASONS for r in solo_and_batched["batched"])
    assert after["requests_served"] - before["requests_served"] == len(PROMPTS)
    assert after["batches_run"] - before["batches_run"] < len(PROMPTS)
    assert after["max_batch_seen"] > 1


def test_batched_greedy_output_equals_solo(solo_and_batched: dict) -> None:
    # Left padding must not change what a prompt produces.
    for solo, batched in zip(solo_and_batched["solo"], solo_and_batched["batched"], strict=True):
        assert batched.content[0].text == solo.content[0].text
        assert batched.usage == solo.usage


def test_stop_sequence_cuts_the_reply(worker: Worker) -> None:
    client = worker.client()
    full = ask(client, "hi", max_tokens=16).content[0].text
    # Three ASCII letters from the middle: decodes the same from any prefix of the tokens.
    start = next(
        i
        for i in range(2, len(full) - 3)
        if full[i : i + 3].isascii() and full[i : i + 3].isalpha()
    )
    stop = full[start : start + 3]
    reply = ask(client, "hi", max_tokens=16, stop_sequences=["never appears", stop])
    assert reply.stop_reason == "stop_sequence" and reply.stop_sequence == stop
    assert reply.content[0].text == full[: full.find(stop)]
    assert reply.usage.output_tokens < 16


def test_bad_requests_get_anthropic_errors_and_worker_keeps_serving(worker: Worker) -> None:
    missing = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
    resp = httpx.post(f"{worker.url}/v1/messages", json=missing, timeout=10)
    assert resp.status_code == 400
    body = resp.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]

    with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
        ask(worker.client(), "word " * CONTEXT_LENGTH * 2)
    other = {"name": "other", "input_schema": {"type": "object"}}
    with pytest.raises(anthropic.BadRequestError, match="not in tools"):
        ask(worker.client(), "hi", tool_choice={"type": "tool", "name": "nope"}, tools=[other])

    assert ask(worker.client(), "still there?").usage.output_tokens > 0


def test_forced_tool_call_comes_back_as_tool_use(worker: Worker) -> None:
    # A client's prefill is the start of the tool input; complete, it is the whole input.
    tool = {
        "name": "record_city",
        "description": "Record a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    reply = worker.client().messages.create(
        model="tiny",
        max_tokens=4,
        extra_body={"temperature": 0.0},
        tools=[tool],
        tool_choice={"type": "tool", "name": "record_city"},
        messages=[
            {"role": "user", "content": "Which city?"},
            {"role": "assistant", "content": '{"city": "Paris"}'},
        ],
    )
    assert reply.stop_reason == "tool_use"
    [call] = reply.content
    assert call.type == "tool_use" and call.name == "record_city" and call.id.startswith("toolu_")
    assert call.input == {"city": "Paris"}


def test_listening_beyond_loopback_needs_a_token(model_dir: Path) -> None:
    cmd = [sys.executable, "-m", "truesight", "--model", str(model_dir), "--host", "0.0.0.0"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--token is required to listen beyond loopback" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def guarded(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    log = tmp_path_factory.mktemp("logs") / "guarded.log"
    w = start_worker(model_dir, log, "--host", "0.0.0.0", "--token", "secret", "--no-cache")
    yield w
    assert stop_worker(w) == 0, w.stderr()


def test_token_is_required_when_set(guarded: Worker) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        ask(guarded.client(api_key="wrong"), "hi")
    assert ask(guarded.client(api_key="secret"), "hi").usage.output_tokens > 0
    bearer = {"Authorization": "Bearer secret"}
    body = {"model": "tiny", "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(f"{guarded.url}/v1/messages", json=body, headers=bearer).status_code == 200
    assert httpx.post(f"{guarded.url}/v1/messages", json=body).status_code == 401
    assert httpx.get(f"{guarded.url}/v1/probes").status_code == 401
    probe = {"texts": ["hi there"]}
    assert httpx.post(f"{guarded.url}/v1/probes/surprisal", json=probe).status_code == 401
    resp = httpx.post(f"{guarded.url}/v1/probes/surprisal", json=probe, headers=bearer)
    assert resp.status_code == 200, resp.text
    assert guarded.health()["status"] == "ok"  # /health stays open for readiness checks


def test_worker_does_not_import_other_packages() -> None:
    # The worker talks to the rest of the project over HTTP only.
    for path in (REPO / "truesight").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            roots = {n.split(".")[0] for n in names}
            assert not roots & {"orchestrator", "agents", "memory"}, f"{path}: {names}"
