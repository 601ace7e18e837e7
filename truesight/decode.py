"""Turn one row of a batched `generate` output into a reply: cut it where this request ends.

A batch generates up to the largest max_tokens of its members and stops only when every row is
done, so each row is cut afterwards at its own limit, at EOS, and at its first stop sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal

StopReason = Literal["end_turn", "max_tokens", "stop_sequence"]


@dataclass(frozen=True)
class Finished:
    """The part of a generated row that belongs to the reply, and why it ended."""

    text: str
    output_tokens: int
    stop_reason: StopReason
    stop_sequence: str | None = None


def cut_at_stop(text: str, stop_sequences: Sequence[str]) -> tuple[str, str | None]:
    """Cut `text` before the earliest stop sequence; return the kept text and the one matched.

    When two match at the same place the longer wins, as it is the more specific.
    """
    best: tuple[int, int, str] | None = None
    for stop in stop_sequences:
        if not stop:
            continue
        at = text.find(stop)
        if at >= 0 and (best is None or (at, -len(stop)) < (best[0], best[1])):
            best = (at, -len(stop), stop)
    if best is None:
        return text, None
    return text[: best[0]], best[2]


def _tokens_through(tokens: Sequence[int], stop: str, decode: Callable[[list[int]], str]) -> int:
    """The fewest leading tokens whose text contains `stop` (binary search: decodes are costly).

    Containment only grows as tokens are added, so the predicate is monotone.
    """
    lo, hi = 1, len(tokens)
    while lo < hi:
        mid = (lo + hi) // 2
        if stop in decode(list(tokens[:mid])):
            hi = mid
        else:
            lo = mid + 1
    return lo


def finish_sequence(
    tokens: Sequence[int],
    *,
    max_tokens: int,
    eos_ids: Collection[int],
    stop_sequences: Sequence[str],
    decode: Callable[[list[int]], str],
) -> Finished:
    """Cut generated `tokens` at EOS, `max_tokens` and the first stop sequence, in token order.

    `output_tokens` counts what the model produced for this reply: through the EOS or the token
    that completed the stop sequence, as the Anthropic API counts them.
    """
    kept = list(tokens[:max_tokens])
    reason: StopReason = "max_tokens"
    counted = len(kept)
    for i, token in enumerate(kept):
        if token in eos_ids:
            kept, reason, counted = kept[:i], "end_turn", i + 1
            break
    text = decode(kept)
    cut, stop = cut_at_stop(text, stop_sequences)
    if stop is not None:
        return Finished(cut, _tokens_through(kept, stop, decode), "stop_sequence", stop)
    return Finished(text, counted, reason)
