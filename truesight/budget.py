"""What a Messages request may ask of the model's context: the prompt and `max_tokens` together
must fit in it, as on Anthropic's API, which refuses such a request instead of cutting the reply
short where the context ends."""

from __future__ import annotations

from truesight.wire import InvalidRequest


def check_room(prompt_tokens: int, max_tokens: int, context_length: int) -> None:
    """Raise InvalidRequest (a 400) naming the field, the limit and the prompt's length when the
    prompt leaves no room, or less room than `max_tokens` asks for."""
    if prompt_tokens >= context_length:
        raise InvalidRequest(
            f"prompt is too long: {prompt_tokens} tokens > {context_length - 1} maximum "
            f"(the model's context is {context_length} tokens)"
        )
    room = context_length - prompt_tokens
    if max_tokens > room:
        raise InvalidRequest(
            f"max_tokens: {max_tokens} is more than the model's context leaves for this prompt: "
            f"prompt {prompt_tokens} + max_tokens {max_tokens} > context {context_length} "
            f"tokens; max_tokens may be at most {room}"
        )
