"""Request and response shapes of the Anthropic Messages API, as far as the worker serves them.

Unknown fields are ignored rather than rejected, so newer SDKs that send extra optional fields
keep working. `cache_control` on a block or tool marks a prompt-cache breakpoint, as on the API.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CacheControl(_Wire):
    """A prompt-cache breakpoint: the prompt up to and including its block may be cached."""

    type: Literal["ephemeral"] = "ephemeral"
    ttl: str | None = Field(default=None, description="Accepted; the worker evicts by LRU.")


class _Cacheable(_Wire):
    # Read from requests, never written back: a reply's blocks carry no cache_control.
    cache_control: CacheControl | None = Field(
        default=None, exclude=True, description="Cache the prompt up to and including this block."
    )


class TextBlock(_Cacheable):
    """Plain text."""

    type: Literal["text"] = "text"
    text: str


class ToolUseBlock(_Cacheable):
    """A tool call made by the assistant."""

    type: Literal["tool_use"] = "tool_use"
    id: str = Field(default_factory=lambda: f"toolu_{uuid.uuid4().hex[:24]}")
    name: str
    input: dict[str, Any]


class ToolResultBlock(_Cacheable):
    """The result of a tool call, sent back by the user."""

    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: str | list[TextBlock] = ""
    is_error: bool = False


InputBlock = Annotated[TextBlock | ToolUseBlock | ToolResultBlock, Field(discriminator="type")]
OutputBlock = Annotated[TextBlock | ToolUseBlock, Field(discriminator="type")]


class InputMessage(_Wire):
    """One conversation turn."""

    role: Literal["user", "assistant"]
    content: str | list[InputBlock]


class Tool(_Cacheable):
    """A tool the model may call; `input_schema` is a JSON schema."""

    name: str
    description: str = ""
    input_schema: dict[str, Any]


class ToolChoice(_Wire):
    """How the model must use tools: auto, any, a named tool, or none."""

    type: Literal["auto", "any", "tool", "none"]
    name: str | None = Field(default=None, description="The tool to call when type is 'tool'.")


class MessagesRequest(_Wire):
    """Body of POST /v1/messages."""

    model: str = Field(description="Echoed back; the worker serves whatever model it loaded.")
    messages: list[InputMessage] = Field(min_length=1)
    max_tokens: int = Field(
        ge=1,
        strict=True,  # "8" or 8.0 is a client's mistake to hear about, not to guess at
        description="Most tokens to generate; with the prompt, at most the model's context.",
    )
    system: str | list[TextBlock] | None = None
    temperature: float = Field(default=1.0, ge=0.0, le=1.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    stop_sequences: list[str] = Field(default_factory=list)
    tools: list[Tool] = Field(default_factory=list)
    tool_choice: ToolChoice | None = None
    metadata: dict[str, Any] | None = Field(default=None, description="Accepted and ignored.")
    stream: bool = False


class Usage(_Wire):
    """Token counts of a reply; the prompt's are split as the API splits them."""

    input_tokens: int = Field(description="Prompt tokens neither read from nor written to cache.")
    output_tokens: int
    cache_creation_input_tokens: int = Field(
        default=0, description="Prompt tokens prefilled and written to the prompt cache."
    )
    cache_read_input_tokens: int = Field(
        default=0, description="Prompt tokens read from the prompt cache, not prefilled."
    )


class MessageResponse(_Wire):
    """Body of a successful POST /v1/messages."""

    id: str = Field(default_factory=lambda: f"msg_{uuid.uuid4().hex[:24]}")
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[OutputBlock]
    stop_reason: Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]
    stop_sequence: str | None = None
    usage: Usage


class ErrorDetail(_Wire):
    """What went wrong; `type` is one of the Anthropic error types."""

    type: str
    message: str


class ErrorResponse(_Wire):
    """Body of every error response."""

    type: Literal["error"] = "error"
    error: ErrorDetail


class InvalidRequest(Exception):
    """A request the worker cannot serve as sent; answered with 400 invalid_request_error."""


def describe_errors(errors: Sequence[Mapping[str, Any]], *, under: str = "") -> str:
    """One line naming each invalid field (`loc: message; ...`) for a 400's message.

    `under` prefixes every location (`params` for a probe's parameters); FastAPI's "body" step of
    a location names no field, so it is left out.
    """
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in (under, *err.get("loc", ())) if p not in ("", "body"))
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"
