"""Pick each row's next token under its own settings: a grammar mask for a forced tool call,
then greedy or sampled decoding with transformers' own warpers (temperature, top-k, top-p), so a
batch can mix requests whose settings differ."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import llguidance
import torch
from transformers import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from truesight.constrain import mask_to_grammar
from truesight.generate import GenRequest, Sampling
from truesight.model import LoadedModel


class Picking(Protocol):
    """What a row needs to pick a token: its request and its grammar's state."""

    request: GenRequest
    matcher: llguidance.LLMatcher | None


def warpers(s: Sampling) -> LogitsProcessorList:
    """The warpers `generate` would apply for `s` (top_k 0 or None: no top-k at all, as on the
    Messages API)."""
    chain = LogitsProcessorList([TemperatureLogitsWarper(s.temperature)])
    if s.top_k:
        chain.append(TopKLogitsWarper(s.top_k))
    if s.top_p is not None and s.top_p < 1.0:
        chain.append(TopPLogitsWarper(s.top_p))
    return chain


def pick_tokens(loaded: LoadedModel, logits: torch.Tensor, rows: Sequence[Picking]) -> list[int]:
    """The next token of each row, from `logits` `[rows, vocab]` (the last position)."""
    scores = logits.float()
    matchers = [r.matcher for r in rows]
    if any(m is not None for m in matchers):
        scores = mask_to_grammar(scores, matchers, sorted(loaded.eos_ids()))
    picked = scores.argmax(-1)
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        if r.request.sampling.temperature != 0:
            groups.setdefault(r.request.sampling.group_key(), []).append(i)
    for members in groups.values():
        index = torch.tensor(members, device=scores.device)
        warped = warpers(rows[members[0]].request.sampling)(None, scores[index])
        probs = torch.softmax(warped, dim=-1)
        picked[index] = torch.multinomial(probs, num_samples=1).squeeze(1)
    return picked.tolist()
