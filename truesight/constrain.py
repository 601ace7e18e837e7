"""Constrained decoding: a forced tool call's input is generated under its JSON schema.

llguidance compiles the tool's `input_schema` to a grammar; at every step a `LogitsProcessor`
masks the logits of each constrained row to the tokens that keep the output a valid prefix of
a schema-valid object, and once the object is closed it allows only EOS. Unconstrained rows of
the same batch are left alone, so constrained and free requests share one `generate` call.

The JSON comes out with `json.dumps`' default separators (`", "`, `": "`) and no other
whitespace: free whitespace lets small models pad forever, and these separators are what
the tool instruction's schema shows the model and what a client's prefill usually holds.
Keywords llguidance does not implement (`uniqueItems`, `not`, `if`/`then`, ...) are ignored
with a logged warning rather than refused: such a schema is enforced as far as it can be, and
the client validates the input anyway. A schema that is broken or that llguidance cannot
compile at all (a dangling `$ref`, an unknown type, a look-around `pattern`) is a 400.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import llguidance
import llguidance.hf
import numpy as np
import torch
from transformers import LogitsProcessor, PreTrainedModel

from truesight.model import LoadedModel
from truesight.wire import InvalidRequest, Tool

log = logging.getLogger(__name__)

_JSON_OPTIONS: llguidance.JsonCompileOptions = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
    "lenient": True,
}

_tokenizers: weakref.WeakKeyDictionary[PreTrainedModel, llguidance.LLTokenizer] = (
    weakref.WeakKeyDictionary()
)
_tokenizers_lock = threading.Lock()


def ll_tokenizer(loaded: LoadedModel) -> llguidance.LLTokenizer:
    """llguidance's view of the model's vocabulary, built once per model (about 1 s)."""
    with _tokenizers_lock:
        found = _tokenizers.get(loaded.model)
        if found is None:
            found = llguidance.hf.from_tokenizer(
                loaded.tokenizer,
                # the model's logits can be wider than the tokenizer (padded embeddings)
                n_vocab=loaded.model.config.vocab_size,
                eos_token=sorted(loaded.eos_ids()),
            )
            _tokenizers[loaded.model] = found
        return found


@dataclass(frozen=True)
class JsonConstraint:
    """A tool's input schema compiled for llguidance, and what of the output the prompt holds."""

    grammar: str
    """The llguidance grammar (a JSON string) for the tool's input."""
    prefix: str = ""
    """Text the prompt already ends with (a client's prefill): the output continues it."""

    def matcher(self, tokenizer: llguidance.LLTokenizer) -> llguidance.LLMatcher:
        """A fresh matcher, advanced through `prefix`; check `is_error()` before use."""
        m = llguidance.LLMatcher(tokenizer, self.grammar, log_level=0)
        if self.prefix and not m.is_error():
            m.consume_tokens(tokenizer.tokenize_str(self.prefix))
        return m


def compile_tool_input(loaded: LoadedModel, tool: Tool, prefix: str = "") -> JsonConstraint:
    """Compile `tool.input_schema`; InvalidRequest (a 400) when llguidance cannot use it.

    Also rejects a `prefix` (the request's trailing assistant turn) that no valid input starts
    with. Takes milliseconds for ordinary schemas; the first call per model builds the
    tokenizer.
    """
    schema: dict[str, Any] = tool.input_schema
    if schema.get("type") != "object":
        raise InvalidRequest(f"tool {tool.name!r}: input_schema must have type 'object'")
    where = f"tool {tool.name!r}: input_schema cannot be used for constrained decoding"
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=_JSON_OPTIONS)
    except ValueError as e:
        raise InvalidRequest(f"{where}: {e}") from e
    tokenizer = ll_tokenizer(loaded)
    matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
    if matcher.is_error():
        raise InvalidRequest(f"{where}: {_first_line(matcher.get_error())}")
    for warning in matcher.get_grammar_warnings():
        log.warning(
            "tool %r: constrained decoding does not enforce all of it: %s", tool.name, warning
        )
    if prefix and not matcher.consume_tokens(tokenizer.tokenize_str(prefix)):
        raise InvalidRequest(
            f"the assistant prefill {prefix!r} does not start a valid input for tool "
            f"{tool.name!r} (inputs are written as json.dumps writes them): "
            f"{_first_line(matcher.get_error())}"
        )
    return JsonConstraint(grammar, prefix)


def _first_line(error: str) -> str:
    """llguidance's message without the parser state it dumps after it."""
    return error.split("\n<state>")[0].strip()


class JsonSchemaProcessor(LogitsProcessor):
    """Masks each constrained row's logits to its grammar; rows with None stay free.

    Stateful (the matchers follow the generated tokens), so make one per `generate` call.
    """

    def __init__(self, loaded: LoadedModel, constraints: list[JsonConstraint | None]):
        tokenizer = ll_tokenizer(loaded)
        self.eos = sorted(loaded.eos_ids())
        self.matchers = [None if c is None else c.matcher(tokenizer) for c in constraints]
        self.started = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.Tensor:
        if self.started:  # the previous step's tokens are now the last column
            last = input_ids[:, -1].tolist()
            for m, token in zip(self.matchers, last, strict=True):
                if m is not None and not m.is_stopped():
                    m.consume_token(token)
        self.started = True
        return mask_to_grammar(scores, self.matchers, self.eos)


def mask_to_grammar(
    scores: torch.Tensor, matchers: Sequence[llguidance.LLMatcher | None], eos: Sequence[int]
) -> torch.Tensor:
    """Mask each row of `scores` that has a matcher to the tokens its grammar allows next (in
    place); rows with None stay free. A row whose object is closed, or that nothing fits (a
    schema no input satisfies), may only end: the server then finds no complete input and says
    so."""
    width = scores.shape[1]
    rows, allowed = [], []
    for i, m in enumerate(matchers):
        if m is None:
            continue
        ok = None if m.is_stopped() else _allowed(m, width)
        if ok is None or not ok.any():
            ok = np.zeros(width, dtype=bool)
            ok[list(eos)] = True
        rows.append(i)
        allowed.append(ok)
    if not rows:
        return scores
    # One masked_fill for all constrained rows: on CPU a per-row op over a 50k vocabulary
    # costs as much as a small model's step when the cores are busy.
    blocked = torch.from_numpy(~np.stack(allowed)).to(scores.device)
    index = torch.tensor(rows, device=scores.device)
    scores[index] = scores[index].masked_fill(blocked, float("-inf"))
    return scores


def _allowed(m: llguidance.LLMatcher, width: int) -> np.ndarray:
    """The matcher's bitmask (one bit per token, little-endian words) as `width` bools."""
    bits = np.unpackbits(np.frombuffer(m.compute_bitmask(), dtype=np.uint8), bitorder="little")
    if len(bits) < width:  # logits wider than the vocabulary llguidance knows: never allowed
        bits = np.concatenate([bits, np.zeros(width - len(bits), dtype=np.uint8)])
    return bits[:width].astype(bool)
