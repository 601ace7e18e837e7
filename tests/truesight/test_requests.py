"""What the worker's Messages route refuses, and how it says so: a 400 in Anthropic's error shape
that names the field, never a guess at what the client meant."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from tests.fakes.tiny_model import CONTEXT_LENGTH
from tests.truesight.workers import Worker

HI = [{"role": "user", "content": "hi"}]


def refusal(worker: Worker, **request: object) -> str:
    """POST the raw body (`content` bytes, else the JSON of `request`); the 400's message."""
    content = request.pop("content", None)
    kwargs = {"content": content} if content is not None else {"json": request}
    resp = httpx.post(f"{worker.url}/v1/messages", timeout=30, **kwargs)
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    return body["error"]["message"]


@pytest.mark.parametrize("value", ["8", 8.0, 8.5, True])
def test_max_tokens_must_be_an_integer(worker: Worker, value: object) -> None:
    message = refusal(worker, model="tiny", messages=HI, max_tokens=value)
    assert message.startswith("max_tokens: ")


def test_an_empty_body_names_each_required_field(worker: Worker) -> None:
    message = refusal(worker, content=b"")
    assert "the request body is empty" in message
    for field in ("model", "messages", "max_tokens"):
        assert f"{field}: Field required" in message
    missing = refusal(worker, model="tiny", messages=HI)
    assert missing == "max_tokens: Field required"


def test_max_tokens_is_bounded_by_the_context(worker: Worker) -> None:
    client = worker.client()
    fits = client.messages.create(
        model="tiny", max_tokens=4, messages=HI, extra_body={"temperature": 0.0}
    )
    prompt = fits.usage.input_tokens
    room = CONTEXT_LENGTH - prompt
    message = refusal(worker, model="tiny", messages=HI, max_tokens=room + 1)
    assert message.startswith(f"max_tokens: {room + 1} is more than the model's context leaves")
    assert f"prompt {prompt} + max_tokens {room + 1} > context {CONTEXT_LENGTH}" in message
    assert message.endswith(f"max_tokens may be at most {room}")
    with pytest.raises(anthropic.BadRequestError, match="max_tokens may be at most"):
        client.messages.create(model="tiny", max_tokens=room + 1, messages=HI)
    # exactly the room left is allowed
    full = client.messages.create(
        model="tiny", max_tokens=room, messages=HI, extra_body={"temperature": 0.0}
    )
    assert full.usage.output_tokens <= room
