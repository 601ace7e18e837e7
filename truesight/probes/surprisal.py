"""Surprisal: how unexpected each token of a text is to the model, given an optional context.

Context tokens are conditioned on but not scored. When the tokenizer adds no BOS and there is no
context, the text's first token has nothing to be predicted from and is not scored either.
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field

from truesight.model import LoadedModel
from truesight.probes.batch import ProbeStats, Row, score_rows
from truesight.probes.fused import Needs, TextPass
from truesight.probes.inputs import ProbeInput, TokenSpan, encode_located
from truesight.wire import InvalidRequest


class SurprisalParams(BaseModel):
    """Parameters of the surprisal probe."""

    model_config = ConfigDict(extra="forbid")
    top_k: int = Field(default=5, ge=0, le=100, description="How many top_spans to return.")


class Span(TokenSpan):
    """One surprising token, located in the text by character offsets."""

    surprisal: float = Field(description="-log p(token | everything before it), nats.")


class SurprisalResult(BaseModel):
    """Per-text summary of token surprisals (nats)."""

    tokens: int = Field(description="Number of scored tokens.")
    mean_nll: float = Field(description="Mean surprisal of the scored tokens.")
    perplexity: float = Field(description="exp(mean_nll).")
    p90: float = Field(description="90th percentile surprisal (linear interpolation).")
    max: float = Field(description="Largest surprisal.")
    top_spans: list[Span] = Field(description="The top_k most surprising tokens, most first.")


def prepare(loaded: LoadedModel, items: list[ProbeInput], params: SurprisalParams):
    prepared = []
    for i, item in enumerate(items):
        enc = encode_located(loaded.tokenizer, item, i, loaded.context_length)
        # Without a prefix the first text token is predicted from nothing: skip it.
        skip = 0 if enc.prefix else 1
        if len(enc.text) <= skip:
            raise InvalidRequest(
                f"texts[{i}] has no token to score: it needs two tokens, or a context"
            )
        prepared.append((item.text, enc.ids, len(enc.prefix) + skip, enc.offsets[skip:]))
    return prepared


def _summary(text: str, nll: torch.Tensor, offsets: list, top_k: int) -> SurprisalResult:
    top = torch.topk(nll, min(top_k, len(nll))).indices.tolist()
    spans = [
        Span(
            start=offsets[t][0],
            end=offsets[t][1],
            text=text[offsets[t][0] : offsets[t][1]],
            surprisal=float(nll[t]),
        )
        for t in top
    ]
    mean = float(nll.mean())
    return SurprisalResult(
        tokens=len(nll),
        mean_nll=mean,
        perplexity=math.exp(mean),
        p90=float(torch.quantile(nll.double(), 0.9)),
        max=float(nll.max()),
        top_spans=spans,
    )


def compute(
    loaded: LoadedModel, prepared: list, params: SurprisalParams, stats: ProbeStats
) -> list[SurprisalResult]:
    rows = [Row(ids=ids, score_from=start) for _, ids, start, _ in prepared]
    scored = score_rows(loaded, rows, stats)
    return [
        _summary(text, -s.token_logprobs, offsets, params.top_k)
        for (text, _, _, offsets), s in zip(prepared, scored, strict=True)
    ]


def plan(loaded: LoadedModel, item: tuple, params: SurprisalParams) -> tuple[list[int], Needs]:
    """The sequence a fused pass reads for this prepared item, and what surprisal needs of it."""
    _, ids, start, _ = item
    return ids, Needs(score_from=start)


def read(
    loaded: LoadedModel, item: tuple, seen: TextPass, params: SurprisalParams, calibration
) -> SurprisalResult:
    text, _, start, offsets = item
    return _summary(text, -seen.token_lp(start), offsets, params.top_k)
