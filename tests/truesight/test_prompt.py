"""Rendering requests into prompts, and picking the tool a reply must call."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from tests.fakes.tiny_model import build_tiny_model
from truesight.prompt import build_prompt, forced_tool
from truesight.wire import InvalidRequest, MessagesRequest


def request(**kwargs) -> MessagesRequest:
    body = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    return MessagesRequest.model_validate({**body, **kwargs})


TOOL = {"name": "rate", "description": "Rate it.", "input_schema": {"type": "object"}}


def test_forced_tool_follows_tool_choice() -> None:
    assert forced_tool(request(tools=[TOOL])) is None
    assert forced_tool(request(tools=[TOOL], tool_choice={"type": "any"})).name == "rate"
    assert forced_tool(request(tools=[TOOL], tool_choice={"type": "tool", "name": "rate"}))
    with pytest.raises(InvalidRequest):
        forced_tool(request(tool_choice={"type": "any"}))


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    return AutoTokenizer.from_pretrained(build_tiny_model(tmp_path_factory.mktemp("tiny")))


def test_build_prompt_renders_blocks_system_and_tool_instruction(tokenizer) -> None:
    req = request(
        system=[{"type": "text", "text": "Be terse."}],
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "rate"},
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Rate this."}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "rate", "input": {"x": 1}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"}],
            },
        ],
    )
    prompt = build_prompt(tokenizer, req)
    text = tokenizer.decode(prompt.input_ids)
    # no "{" prefill: the schema's grammar starts the object
    assert prompt.forced_tool.name == "rate" and prompt.prefill == ""
    assert text.startswith('<|bos|><|system|>Be terse.\n\nYou must call the tool "rate".')
    assert '[tool call rate (id toolu_1): {"x": 1}]' in text
    assert "[tool result for toolu_1: done]" in text
    assert text.endswith("<|assistant|>")


def test_build_prompt_continues_a_trailing_assistant_turn(tokenizer) -> None:
    req = request(
        messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Well,"}]
    )
    prompt = build_prompt(tokenizer, req)
    assert prompt.prefill == "Well,"
    assert tokenizer.decode(prompt.input_ids).endswith("<|assistant|>Well,")


def test_build_prompt_without_chat_template_uses_a_plain_transcript(tokenizer) -> None:
    template, tokenizer.chat_template = tokenizer.chat_template, None
    try:
        prompt = build_prompt(tokenizer, request(system="S"))
    finally:
        tokenizer.chat_template = template
    text = tokenizer.decode(prompt.input_ids, skip_special_tokens=True)
    assert text == "System: S\n\nUser: hi\n\nAssistant:"


def test_the_tool_schema_is_shown_on_one_line_without_titles(tokenizer) -> None:
    """A small model's context is short: the schema it reads drops pydantic's titles and the
    indentation (the grammar is compiled from the whole schema), and keeps a property that is
    itself named `title`."""
    schema = {
        "type": "object",
        "title": "Rate",
        "properties": {
            "title": {"type": "string", "title": "Title", "description": "The headline."},
            "score": {"type": "integer", "title": "Score"},
        },
    }
    tool = {**TOOL, "input_schema": schema}
    req = request(tools=[tool], tool_choice={"type": "tool", "name": "rate"})
    text = tokenizer.decode(build_prompt(tokenizer, req).input_ids)
    shown = (
        '{"type": "object", "properties": {"title": {"type": "string", "description": '
        '"The headline."}, "score": {"type": "integer"}}}'
    )
    assert shown in text
