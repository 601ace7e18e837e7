"""One forward pass per text, read by every probe that asked for it.

A probe says what it needs from a token sequence (`Needs`): the log-probs of its tokens from some
position on (surprisal), the residual stream at some layers (trained linear probes), and the
next-token log-probs after short suffixes (author, follow-up). `read_all` unites the needs of all
probes on each sequence and runs the decoder over it once, right-padded and bucketed as in
`batch`: the logits of the scored positions come from the last hidden state, the layers from
forward hooks that record (and, when nothing above is needed, stop) the pass, and the suffixes
run in one more pass that continues the prefill's KV cache (see `prefill.suffix_logprobs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from truesight.model import LoadedModel
from truesight.probes.activations import _source, _Stop
from truesight.probes.batch import (
    MAX_BATCH_TOKENS,
    ProbeStats,
    _chunked_logprobs,
    _pad,
    buckets,
    pad_id,
)
from truesight.probes.prefill import kv_cache, suffix_logprobs

Suffix = tuple[int, ...]


@dataclass(frozen=True)
class Needs:
    """What the probes on one token sequence read from its forward pass."""

    score_from: int | None = None
    """Read log p(ids[t] | ids[:t]) for t >= score_from (at least 1); None: no token log-probs."""
    layers: frozenset[int] = frozenset()
    """Residual layers (numbered as in `activations`) to keep for every position."""
    suffixes: tuple[Suffix, ...] = ()
    """Token sequences appended after the text, each read at its last position."""
    query: tuple[int, ...] = ()
    """Token ids whose log-probs are read after each suffix."""

    def __or__(self, other: Needs) -> Needs:
        starts = [s for s in (self.score_from, other.score_from) if s is not None]
        return Needs(
            score_from=min(starts) if starts else None,
            layers=self.layers | other.layers,
            suffixes=tuple(dict.fromkeys(self.suffixes + other.suffixes)),
            query=tuple(dict.fromkeys(self.query + other.query)),
        )


@dataclass
class TextPass:
    """What one forward pass over a token sequence yielded, on the CPU in fp32."""

    needs: Needs
    token_logprobs: torch.Tensor | None
    """log p(ids[t] | ids[:t]) for t = needs.score_from .. len(ids) - 1."""
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)
    """Layer -> (len(ids), d) residual stream."""
    finals: torch.Tensor | None = None
    """(suffixes, query) log-probs after each of needs.suffixes."""

    def token_lp(self, start: int) -> torch.Tensor:
        """log p(ids[t] | ids[:t]) for t >= start (start >= needs.score_from)."""
        assert self.token_logprobs is not None and self.needs.score_from is not None
        return self.token_logprobs[start - self.needs.score_from :]

    def after(self, suffixes: list[Suffix], query: list[int]) -> torch.Tensor:
        """(len(suffixes), len(query)) log-probs, picked from what was read."""
        assert self.finals is not None
        rows = [self.needs.suffixes.index(s) for s in suffixes]
        cols = [self.needs.query.index(q) for q in query]
        return self.finals[rows][:, cols]


def read_all(
    loaded: LoadedModel,
    seqs: list[list[int]],
    needs: list[Needs],
    stats: ProbeStats,
    *,
    max_batch_tokens: int = MAX_BATCH_TOKENS,
) -> list[TextPass]:
    """One TextPass per sequence; sequences that need the same things (wherever each one's
    scoring starts) share mini-batches."""
    out: list[TextPass | None] = [None] * len(seqs)
    groups: dict[Needs, list[int]] = {}
    for i, n in enumerate(needs):
        shared = replace(n, score_from=None if n.score_from is None else 1)
        groups.setdefault(shared, []).append(i)
    with torch.inference_mode():
        for need, members in groups.items():
            longest_suffix = max((len(s) for s in need.suffixes), default=0)
            # The suffix pass attends over (text + suffix) for every suffix: budget for that.
            costs = [
                max(len(seqs[i]), (len(seqs[i]) + longest_suffix) * len(need.suffixes))
                for i in members
            ]
            for bucket in buckets(costs, max_batch_tokens):
                rows = [members[b] for b in bucket]
                own = [needs[i] for i in rows]
                passes = _read_batch(loaded, [seqs[i] for i in rows], need, own, stats)
                for i, p in zip(rows, passes, strict=True):
                    out[i] = p
    return out  # type: ignore[return-value]


def _read_batch(
    loaded: LoadedModel,
    seqs: list[list[int]],
    need: Needs,
    own: list[Needs],
    stats: ProbeStats,
) -> list[TextPass]:
    """`need` is what the batch shares; `own` each row's needs, with its own score_from."""
    decoder = loaded.model.get_decoder()
    ids, mask, positions, _ = _pad(seqs, pad_id(loaded), "right", loaded.device)
    # Only the layers are wanted: stop at the highest of them, as `activations.hidden_at` does.
    only_layers = need.layers and need.score_from is None and not need.suffixes
    stop_at = max(need.layers) if only_layers else None
    caught: dict[int, torch.Tensor] = {}
    handles = [
        _source(decoder, layer).register_forward_hook(_recorder(caught, layer, layer == stop_at))
        for layer in need.layers
    ]
    output = None
    try:
        output = decoder(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=bool(need.suffixes),
        )
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    stats.forward_passes += 1
    stats.tokens_forwarded += int(mask.sum())
    starts = [n.score_from for n in own] if need.score_from is not None else None
    token_lp = _token_logprobs(loaded, output, seqs, starts)
    finals = None
    if need.suffixes:
        cache = kv_cache(decoder, output)
        suffixes = [list(s) for s in need.suffixes]
        finals = suffix_logprobs(loaded, cache, mask, suffixes, list(need.query), stats)
    passes = []
    for r, seq in enumerate(seqs):
        hidden = {layer: h[r, : len(seq)].float().cpu() for layer, h in caught.items()}
        passes.append(
            TextPass(
                needs=own[r],
                token_logprobs=token_lp[r] if token_lp is not None else None,
                hidden=hidden,
                finals=finals[r] if finals is not None else None,
            )
        )
    return passes


def _recorder(caught: dict[int, torch.Tensor], layer: int, stop: bool):  # noqa: ANN202
    def hook(_module: nn.Module, _args: object, output: object) -> None:
        caught[layer] = output[0] if isinstance(output, tuple) else output
        if stop:
            raise _Stop

    return hook


def _token_logprobs(
    loaded: LoadedModel, output: object, seqs: list[list[int]], starts: list[int] | None
) -> list[torch.Tensor] | None:
    """Per row, log p(ids[t] | ids[:t]) for t >= its start: token t is predicted by the hidden
    state at t - 1; only those positions are projected to the vocabulary."""
    if starts is None:
        return None
    hidden = output.last_hidden_state
    device = hidden.device
    where_b, where_t, targets, sizes = [], [], [], []
    for r, (seq, score_from) in enumerate(zip(seqs, starts, strict=True)):
        n = max(len(seq) - score_from, 0)
        where_b += [r] * n
        where_t += range(score_from - 1, len(seq) - 1)
        targets += seq[score_from:]
        sizes.append(n)

    def index(values: list[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long, device=device)

    picked = hidden[index(where_b), index(where_t)]
    flat = _chunked_logprobs(loaded, picked, index(targets)).cpu()
    return list(flat.split(sizes))


class Calibration:
    """Readouts of content-free texts (the author probe's null text), computed once per worker:
    they depend only on the model, the text, the suffixes and the query ids."""

    def __init__(self, max_entries: int = 256):
        self._memo: dict[tuple[Suffix, Needs], TextPass] = {}
        self.max_entries = max_entries

    def read(self, loaded: LoadedModel, seq: list[int], need: Needs, stats: ProbeStats) -> TextPass:
        key = (tuple(seq), need)
        if key not in self._memo:
            if len(self._memo) >= self.max_entries:
                self._memo.pop(next(iter(self._memo)))
            (self._memo[key],) = read_all(loaded, [seq], [need], stats)
        return self._memo[key]
