"""Turn a Messages request into token ids, and name the tool the reply must call, if any."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from truesight.cache_points import (
    MAX_BREAKPOINTS,
    MarkedTurn,
    block_ends,
    char_points,
    token_points,
)
from truesight.wire import InputMessage, InvalidRequest, MessagesRequest, Tool

_TEMPLATES = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)
_TEMPLATE_DIR = Path(__file__).parent / "prompts"


def _template(name: str):
    return _TEMPLATES.from_string((_TEMPLATE_DIR / name).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Prompt:
    """What to generate from: token ids, plus the tool whose input the reply must be."""

    input_ids: list[int]
    forced_tool: Tool | None = None
    prefill: str = ""
    """A trailing assistant turn the reply continues (Anthropic's prefill)."""
    cache_points: tuple[int, ...] = ()
    """Prompt lengths, in tokens, at its `cache_control` breakpoints."""


def forced_tool(request: MessagesRequest) -> Tool | None:
    """The tool the reply must call, from tool_choice; None when the model may answer freely."""
    choice = request.tool_choice
    if choice is None or choice.type in ("auto", "none"):
        return None
    if not request.tools:
        raise InvalidRequest(f"tool_choice {choice.type!r} needs a non-empty tools list")
    if choice.type == "any":
        # Constrained decoding follows one schema, so the model does not pick among several
        # tools: the first is called (with one tool, "any" is exactly right).
        return request.tools[0]
    for tool in request.tools:
        if tool.name == choice.name:
            return tool
    raise InvalidRequest(f"tool_choice names {choice.name!r}, which is not in tools")


def _parts(message: InputMessage) -> list[tuple[str, bool]]:
    """A message's blocks as text, each with whether it carries a cache breakpoint."""
    if isinstance(message.content, str):
        return [(message.content, False)]
    parts = []
    for block in message.content:
        if block.type == "text":
            text = block.text
        elif block.type == "tool_use":
            text = f"[tool call {block.name} (id {block.id}): {json.dumps(block.input)}]"
        else:
            body = block.content
            if not isinstance(body, str):
                body = "\n".join(b.text for b in body)
            status = "error" if block.is_error else "result"
            text = f"[tool {status} for {block.tool_use_id}: {body}]"
        parts.append((text, block.cache_control is not None))
    return parts


def _turn(message: InputMessage) -> MarkedTurn:
    """Flatten a message's blocks to text; chat templates of small local models take strings."""
    parts = _parts(message)
    return MarkedTurn("\n".join(text for text, _ in parts), block_ends(parts))


def _shown(schema: object) -> object:
    """The schema as the prompt shows it: without pydantic's `title`s, which repeat the property
    names, and written on one line (indentation costs a small model a third of its tokens). The
    grammar is compiled from the whole schema."""
    if isinstance(schema, dict):
        return {
            k: _shown(v) for k, v in schema.items() if not (k == "title" and isinstance(v, str))
        }
    if isinstance(schema, list):
        return [_shown(v) for v in schema]
    return schema


def _system_turn(request: MessagesRequest, tool: Tool | None) -> MarkedTurn:
    """The system text (blocks joined by newlines), then the forced tool's instruction after a
    blank line; a marked tool caches through that instruction (the API puts tools first)."""
    system = request.system or ""
    if isinstance(system, str):
        parts = [(system, False)] if system else []
    else:
        parts = [(b.text, b.cache_control is not None) for b in system]
    text = "\n".join(t for t, _ in parts)
    ends = block_ends(parts)
    if tool is None:
        return MarkedTurn(text, ends)
    schema = json.dumps(_shown(tool.input_schema))
    instruction = _template("tool_call.j2").render(tool=tool, schema=schema)
    text = f"{text}\n\n{instruction}" if text else instruction
    if any(t.cache_control is not None for t in request.tools):
        ends += (len(text),)
    return MarkedTurn(text, ends)


def _count_breakpoints(request: MessagesRequest) -> int:
    blocks = [*request.tools]
    if not isinstance(request.system, str | None):
        blocks.extend(request.system)
    for message in request.messages:
        if not isinstance(message.content, str):
            blocks.extend(message.content)
    return sum(b.cache_control is not None for b in blocks)


def build_prompt(tokenizer: PreTrainedTokenizerBase, request: MessagesRequest) -> Prompt:
    """Render the request with the tokenizer's chat template (a plain one if it has none)."""
    tool = forced_tool(request)
    if (marked := _count_breakpoints(request)) > MAX_BREAKPOINTS:
        raise InvalidRequest(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {marked}."
        )
    turns = [(m.role, _turn(m)) for m in request.messages]
    prefill = MarkedTurn("")
    if turns[-1][0] == "assistant":
        prefill = turns.pop()[1]
    # No "{" prefill for a forced tool: its schema's grammar makes the reply start with one.
    system = _system_turn(request, tool)
    if system.content:
        turns.insert(0, ("system", system))
    chat = [{"role": role, "content": turn.content} for role, turn in turns]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        special = False  # the template writes BOS and friends itself
    else:  # base models: a plain transcript
        text = _template("plain_chat.j2").render(turns=chat)
        special = True
    full = text + prefill.content
    ids = list(tokenizer(full, add_special_tokens=special)["input_ids"])
    chars = char_points(text, [turn for _, turn in turns])
    chars += [len(text) + end for end in prefill.ends]
    points = token_points(tokenizer, full, ids, chars, special=special) if chars else ()
    return Prompt(input_ids=ids, forced_tool=tool, prefill=prefill.content, cache_points=points)
