"""Where a prompt's `cache_control` breakpoints fall, in tokens of the rendered prompt.

The Messages API caches "the prompt up to and including" a marked block, in the order tools,
system, messages. Here the prompt is a chat template's rendering of turns, so a breakpoint is the
end of a marked block's text inside its turn's content: found in the rendered text, then turned
into the number of leading prompt tokens that lie wholly before it. Tokenizing the text up to
the breakpoint and keeping what it shares with the whole prompt's tokens gives a true token prefix
of the prompt even where a token straddles the breakpoint.

A breakpoint that cannot be placed (a template that rewrote the turn's text) is dropped: the
prompt is then prefilled, never mis-cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers.tokenization_utils_base import PreTrainedTokenizerBase

MAX_BREAKPOINTS = 4
"""As on the API: at most four blocks may carry cache_control."""


@dataclass(frozen=True)
class MarkedTurn:
    """One turn's content and the character offsets in it where marked blocks end."""

    content: str
    ends: tuple[int, ...] = ()


def block_ends(parts: Sequence[tuple[str, bool]], sep: str = "\n") -> tuple[int, ...]:
    """Offsets, in `sep.join(texts)`, of the ends of the parts marked for caching."""
    ends, at = [], 0
    for i, (text, marked) in enumerate(parts):
        at += (len(sep) if i else 0) + len(text)
        if marked:
            ends.append(at)
    return tuple(ends)


def char_points(text: str, turns: Sequence[MarkedTurn]) -> list[int]:
    """Breakpoints as offsets into the rendered `text`, finding each turn's content in order."""
    points, cursor = [], 0
    for turn in turns:
        if not turn.content:
            continue
        at = text.find(turn.content, cursor)
        if at < 0:  # the template changed this turn's text: its breakpoints cannot be placed
            continue
        points.extend(at + end for end in turn.ends)
        cursor = at + len(turn.content)
    return points


def token_points(
    tokenizer: PreTrainedTokenizerBase,
    text: str,
    ids: Sequence[int],
    chars: Sequence[int],
    *,
    special: bool,
) -> tuple[int, ...]:
    """Each character breakpoint as the length of the longest token prefix of `ids` before it."""
    points = set()
    for c in chars:
        head = tokenizer(text[:c], add_special_tokens=special)["input_ids"]
        n = 0
        for a, b in zip(head, ids, strict=False):
            if a != b:
                break
            n += 1
        if n:
            points.add(n)
    return tuple(sorted(points))
