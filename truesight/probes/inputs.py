"""Tokenizing probe inputs: context and text separately, then concatenated, BOS first if used."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from truesight.wire import InvalidRequest


@dataclass(frozen=True)
class ProbeInput:
    """One text to probe, with an optional context it is conditioned on."""

    text: str
    context: str = ""


@dataclass(frozen=True)
class Encoded:
    """Token ids of one input: `prefix` (BOS + context) is conditioned on, `text` is read."""

    prefix: list[int]
    text: list[int]

    @property
    def ids(self) -> list[int]:
        return self.prefix + self.text


def bos_prefix(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """[BOS] when the tokenizer itself adds one to an encoded string, else []."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return []
    return [bos] if tokenizer("a")["input_ids"][:1] == [bos] else []


def tokens(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def encode(tokenizer: PreTrainedTokenizerBase, item: ProbeInput) -> Encoded:
    """Context and text are tokenized separately so the text's tokens do not depend on it."""
    return Encoded(
        prefix=bos_prefix(tokenizer) + tokens(tokenizer, item.context),
        text=tokens(tokenizer, item.text),
    )


def first_token(tokenizer: PreTrainedTokenizerBase, word: str) -> int:
    """The first token of `word` (a probe reads only the next token's distribution)."""
    ids = tokens(tokenizer, word)
    if not ids:
        raise InvalidRequest(f"{word!r} encodes to no tokens")
    return ids[0]


def check_fits(index: int, n: int, limit: int, extra: str = "") -> None:
    """400 naming the text when its tokens (plus whatever the probe appends) exceed the model."""
    if n > limit:
        raise InvalidRequest(
            f"texts[{index}] is too long: {n} tokens{extra} > {limit} (the model's context length)"
        )
    if n == 0:
        raise InvalidRequest(f"texts[{index}] is empty")


@dataclass(frozen=True)
class Located(Encoded):
    """An `Encoded` input with the character offsets of each of its text's tokens."""

    offsets: list[tuple[int, int]]


def encode_located(
    tokenizer: PreTrainedTokenizerBase, item: ProbeInput, index: int, context_length: int
) -> Located:
    """The text's tokens after its context's, with their offsets in the text (for spans); 400
    naming `texts[index]` when the whole does not fit the model."""
    enc = tokenizer(item.text, add_special_tokens=False, return_offsets_mapping=True)
    prefix = encode(tokenizer, ProbeInput("", item.context)).prefix
    check_fits(index, len(prefix) + len(enc["input_ids"]), context_length)
    return Located(prefix=prefix, text=enc["input_ids"], offsets=enc["offset_mapping"])


def encode_with_tail(
    tokenizer: PreTrainedTokenizerBase,
    items: list[ProbeInput],
    tails: list[str],
    context_length: int,
    what: str,
) -> list[list[int]]:
    """Encode each item, checking that it still fits with the longest of the `tails` (suffixes
    or questions) appended; the tails themselves are added later, after a shared prefill."""
    longest = max(len(tokens(tokenizer, t)) for t in tails)
    prepared = []
    for i, item in enumerate(items):
        ids = encode(tokenizer, item).ids
        check_fits(i, len(ids) + longest, context_length, f" with the {longest}-token {what}")
        prepared.append(ids)
    return prepared


class TokenSpan(BaseModel):
    """One token of a text, located by character offsets."""

    start: int = Field(description="Character offset of the token's start in the text.")
    end: int = Field(description="Character offset just past the token's end.")
    text: str = Field(description="text[start:end]")
