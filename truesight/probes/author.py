"""Author: zero-shot log-odds of attributes of the text's implied author, calibrated.

After the text comes a suffix such as "\n\nThe author of the text above is"; for a pair of
attributes the readout is log(sum p(first tokens of the positive words)) minus the same for the
negative words, at the position after the suffix. The same quantity on a content-free text
(`null_text`, without the context) is subtracted, which removes the model's prior for the suffix
itself; values are averaged over suffixes. Each text is prefilled once for all suffixes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from truesight.model import LoadedModel
from truesight.probes.batch import ProbeStats
from truesight.probes.fused import Needs, TextPass
from truesight.probes.inputs import (
    ProbeInput,
    encode,
    encode_with_tail,
    first_token,
    tokens,
)
from truesight.probes.prefill import prefix_suffix_logprobs

LEXICON: dict[str, list[str]] = {
    "sincere": [" sincere", " genuine", " honest", " earnest"],
    "insincere": [" insincere", " fake", " performative", " disingenuous"],
    "honest": [" honest", " truthful", " candid", " trustworthy"],
    "deceptive": [" deceptive", " lying", " dishonest", " manipulative"],
    "calm": [" calm", " relaxed", " composed", " serene"],
    "anxious": [" anxious", " nervous", " worried", " afraid"],
    "human": [" human", " person", " man", " woman"],
    "ai": [" AI", " artificial", " machine", " bot", " computer"],
}
DEFAULT_PAIRS = ["sincere_vs_insincere", "honest_vs_deceptive", "calm_vs_anxious", "human_vs_ai"]


class AuthorParams(BaseModel):
    """Parameters of the author probe."""

    model_config = ConfigDict(extra="forbid")
    suffixes: list[str] = Field(
        default=["\n\nThe author of the text above is"],
        min_length=1,
        description="Appended after the text; the readout is the next token's distribution.",
    )
    pairs: list[str] = Field(
        default=DEFAULT_PAIRS,
        min_length=1,
        description="Attribute pairs 'a_vs_b'; a and b name word lists in LEXICON or `words`.",
    )
    words: dict[str, list[str]] = Field(
        default_factory=dict, description="Extra word lists (or replacements) by attribute name."
    )
    null_text: str = Field(
        default="N/A", min_length=1, description="Content-free text used for calibration."
    )

    @model_validator(mode="after")
    def _known_attributes(self) -> AuthorParams:
        known = {**LEXICON, **self.words}
        for pair in self.pairs:
            a, sep, b = pair.partition("_vs_")
            for name in (a, b) if sep else (pair,):
                if name not in known:
                    raise ValueError(
                        f"unknown attribute {name!r} in pair {pair!r}; pairs are 'a_vs_b' with a "
                        f"and b among {sorted(known)} (or given in `words`)"
                    )
        for name, words in known.items():
            if not words:
                raise ValueError(f"word list {name!r} is empty")
        return self

    def lists(self, pair: str) -> tuple[list[str], list[str]]:
        known = {**LEXICON, **self.words}
        a, _, b = pair.partition("_vs_")
        return known[a], known[b]


class AuthorResult(BaseModel):
    """Per-text log-odds by pair name ("sincere_vs_insincere", ...), averaged over suffixes."""

    attributes: dict[str, float] = Field(description="Calibrated: uncalibrated minus null.")
    uncalibrated: dict[str, float] = Field(description="Log-odds for the text itself.")
    null: dict[str, float] = Field(description="Log-odds for null_text (the calibration).")


def prepare(loaded: LoadedModel, items: list[ProbeInput], params: AuthorParams):
    return encode_with_tail(
        loaded.tokenizer, items, params.suffixes, loaded.context_length, "suffix"
    )


def _sides(
    loaded: LoadedModel, pairs: list[tuple[list[str], list[str]]]
) -> tuple[list[list[int]], list[int]]:
    """Each pair's positive and negative first tokens (positive, negative, positive, ...) and
    the sorted query ids they span."""
    tok = loaded.tokenizer
    sides = [sorted({first_token(tok, w) for w in words}) for pair in pairs for words in pair]
    return sides, sorted({t for side in sides for t in side})


def _odds(lp: torch.Tensor, sides: list[list[int]], query: list[int]) -> torch.Tensor:
    """(..., pairs) log-odds from (..., query) log-probs."""
    column = {t: q for q, t in enumerate(query)}
    mass = [torch.logsumexp(lp[..., [column[t] for t in side]], dim=-1) for side in sides]
    return torch.stack([mass[2 * k] - mass[2 * k + 1] for k in range(len(sides) // 2)], dim=-1)


def log_odds(
    loaded: LoadedModel,
    prefixes: list[list[int]],
    suffixes: list[str],
    pairs: list[tuple[list[str], list[str]]],
    stats: ProbeStats,
    *,
    naive: bool = False,
) -> torch.Tensor:
    """(P, S, pairs) log-odds: log sum p(positive first tokens) - log sum p(negative ones)."""
    sides, query = _sides(loaded, pairs)
    suffix_ids = [tokens(loaded.tokenizer, s) for s in suffixes]
    lp = prefix_suffix_logprobs(loaded, prefixes, suffix_ids, query, stats, naive=naive)
    return _odds(lp, sides, query)


def _result(params: AuthorParams, odds: torch.Tensor, null_odds: torch.Tensor) -> AuthorResult:
    """From the text's and the null text's log-odds, each (pairs,) averaged over suffixes."""
    raw = dict(zip(params.pairs, odds.tolist(), strict=True))
    null = dict(zip(params.pairs, null_odds.tolist(), strict=True))
    return AuthorResult(
        attributes={p: raw[p] - null[p] for p in params.pairs}, uncalibrated=raw, null=null
    )


def compute(
    loaded: LoadedModel, prepared: list, params: AuthorParams, stats: ProbeStats
) -> list[AuthorResult]:
    null = encode(loaded.tokenizer, ProbeInput(params.null_text)).ids
    pairs = [params.lists(p) for p in params.pairs]
    odds = log_odds(loaded, [*prepared, null], params.suffixes, pairs, stats).mean(dim=1)
    return [_result(params, row, odds[-1]) for row in odds[:-1]]


def _needs(loaded: LoadedModel, params: AuthorParams) -> tuple[Needs, list[list[int]]]:
    sides, query = _sides(loaded, [params.lists(p) for p in params.pairs])
    suffixes = tuple(tuple(tokens(loaded.tokenizer, s)) for s in params.suffixes)
    return Needs(suffixes=suffixes, query=tuple(query)), sides


def plan(loaded: LoadedModel, item: list[int], params: AuthorParams) -> tuple[list[int], Needs]:
    return item, _needs(loaded, params)[0]


def read(
    loaded: LoadedModel,
    item: list[int],
    seen: TextPass,
    params: AuthorParams,
    calibration: Callable[[list[int], Needs], TextPass],
) -> AuthorResult:
    """The text's readout from its fused pass; the null text's from the worker's calibration
    (read once per worker, not once per text)."""
    needs, sides = _needs(loaded, params)
    suffixes, query = list(needs.suffixes), list(needs.query)
    null = calibration(encode(loaded.tokenizer, ProbeInput(params.null_text)).ids, needs)
    odds = _odds(seen.after(suffixes, query), sides, query).mean(dim=0)
    null_odds = _odds(null.after(suffixes, query), sides, query).mean(dim=0)
    return _result(params, odds, null_odds)
