"""Turn a Messages request into token ids, and name the tool the reply must call, if any."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from truesight.wire import InputMessage, InvalidRequest, MessagesRequest, TextBlock, Tool

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


def _text_of(message: InputMessage) -> str:
    """Flatten a message's blocks to text; chat templates of small local models take strings."""
    if isinstance(message.content, str):
        return message.content
    parts = []
    for block in message.content:
        if block.type == "text":
            parts.append(block.text)
        elif block.type == "tool_use":
            parts.append(f"[tool call {block.name} (id {block.id}): {json.dumps(block.input)}]")
        else:
            body = block.content
            if not isinstance(body, str):
                body = "\n".join(b.text for b in body)
            status = "error" if block.is_error else "result"
            parts.append(f"[tool {status} for {block.tool_use_id}: {body}]")
    return "\n".join(parts)


def _system_text(request: MessagesRequest, tool: Tool | None) -> str:
    system = request.system or ""
    if not isinstance(system, str):
        system = "\n".join(b.text for b in system if isinstance(b, TextBlock))
    if tool is not None:
        schema = json.dumps(tool.input_schema, indent=2)
        instruction = _template("tool_call.j2").render(tool=tool, schema=schema)
        system = f"{system}\n\n{instruction}" if system else instruction
    return system


def build_prompt(tokenizer: PreTrainedTokenizerBase, request: MessagesRequest) -> Prompt:
    """Render the request with the tokenizer's chat template (a plain one if it has none)."""
    tool = forced_tool(request)
    turns = [{"role": m.role, "content": _text_of(m)} for m in request.messages]
    prefill = ""
    if turns[-1]["role"] == "assistant":
        prefill = turns.pop()["content"]
    # No "{" prefill for a forced tool: its schema's grammar makes the reply start with one.
    system = _system_text(request, tool)
    if system:
        turns.insert(0, {"role": "system", "content": system})
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        special = False  # the template writes BOS and friends itself
    else:  # base models: a plain transcript
        text = _template("plain_chat.j2").render(turns=turns)
        special = True
    ids = tokenizer(text + prefill, add_special_tokens=special)["input_ids"]
    return Prompt(input_ids=list(ids), forced_tool=tool, prefill=prefill)
