"""POST /v1/messages: generation, Anthropic-Messages-compatible; a forced tool call is decoded
under its schema's grammar and comes back as a `tool_use` block."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Request
from fastapi.responses import Response

from truesight.budget import check_room
from truesight.cancel import ClientGone, cancel_on_disconnect
from truesight.constrain import compile_tool_input
from truesight.generate import GenRequest, Sampling
from truesight.prompt import build_prompt
from truesight.routes.state import WorkerDep
from truesight.wire import (
    InvalidRequest,
    MessageResponse,
    MessagesRequest,
    TextBlock,
    Tool,
    ToolUseBlock,
    Usage,
)

router = APIRouter()


@router.post("/v1/messages")
async def messages(body: MessagesRequest, worker: WorkerDep, request: Request) -> MessageResponse:
    if body.stream:
        raise InvalidRequest("stream=true is not supported by the local worker")
    loaded = worker.loaded
    prompt = build_prompt(loaded.tokenizer, body)
    check_room(len(prompt.input_ids), body.max_tokens, loaded.context_length)
    sampling = Sampling(temperature=body.temperature, top_p=body.top_p, top_k=body.top_k)
    tool = prompt.forced_tool
    constraint = None
    if tool is not None:  # off the event loop: the first call builds the vocabulary (~1 s)
        constraint = await asyncio.to_thread(compile_tool_input, loaded, tool, prompt.prefill)
    try:
        async with cancel_on_disconnect(request) as cancel:
            result = await worker.batcher.submit(
                GenRequest(
                    input_ids=prompt.input_ids,
                    max_tokens=body.max_tokens,
                    sampling=sampling,
                    # A tool input is not text: a stop sequence inside one of its strings must
                    # not cut a schema-valid call short.
                    stop_sequences=() if tool is not None else tuple(body.stop_sequences),
                    constraint=constraint,
                    cancel=cancel,
                    cache_points=prompt.cache_points,
                )
            )
    except ClientGone:
        return Response(status_code=499)  # nginx's "client closed request"; nobody reads it
    usage = Usage(
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        cache_creation_input_tokens=result.cache_write_tokens,
        cache_read_input_tokens=result.cache_read_tokens,
    )
    if tool is not None and result.stop_reason == "end_turn":
        call = _tool_call(tool, prompt.prefill + result.text)
        return MessageResponse(
            model=body.model, content=[call], stop_reason="tool_use", usage=usage
        )
    # A forced call cut off by max_tokens comes back as what was written, with stop_reason
    # max_tokens (as on Anthropic's API), never as an invented tool_use.
    return MessageResponse(
        model=body.model,
        content=[TextBlock(text=result.text)],
        stop_reason=result.stop_reason,
        stop_sequence=result.stop_sequence,
        usage=usage,
    )


def _tool_call(tool: Tool, written: str) -> ToolUseBlock:
    """The forced tool's call, from what was written under its grammar (prefill included)."""
    try:
        args = json.loads(written)
    except json.JSONDecodeError as e:  # the grammar allows EOS only once the object closes
        raise RuntimeError(
            f"constrained decoding for tool {tool.name!r} ended without a complete input "
            f"(does any input satisfy its schema?): {written!r}"
        ) from e
    return ToolUseBlock(name=tool.name, input=args)
