"""Batched forward passes shared by the probes.

Texts are sorted by length and cut into mini-batches of at most `max_batch_tokens` padded tokens,
so a long text never pads a batch of short ones. Rows are RIGHT-padded: every real token keeps the
positions 0..n-1 it would have alone, and padding only ever follows real tokens, so no attention
row is fully masked. The decoder runs without its LM head; hidden states of the positions a probe
reads are projected to the vocabulary a chunk of positions at a time, and a log-prob is the target
logit minus the logsumexp over the vocabulary, so no (batch x length x vocab) tensor is ever held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from truesight.model import LoadedModel

MAX_BATCH_TOKENS = 16_384
LOGIT_CHUNK = 512
"""Positions projected to the vocabulary at once (512 x 49k vocab x fp32 = 100 MB)."""


@dataclass
class ProbeStats:
    """Counters for /health; tests read `forward_passes` to see whether the cache answered."""

    forward_passes: int = 0
    suffix_passes: int = 0
    """Of forward_passes, those that continued a KV cache with short suffixes."""
    tokens_forwarded: int = 0
    """Real (unpadded) tokens run through the decoder, suffixes included."""
    texts_computed: int = 0
    cache_hits: int = 0


@dataclass(frozen=True)
class Row:
    """One token sequence and what to read from it."""

    ids: list[int]
    score_from: int
    """Score ids[score_from:], each given all the ids before it (so at least 1)."""
    final_ids: tuple[int, ...] = ()
    """Token ids whose log-probs are read at the position after the last id."""


@dataclass
class RowScores:
    token_logprobs: torch.Tensor
    """log p(ids[t] | ids[:t]) for t in score_from..len(ids)-1, fp32 on CPU."""
    final_logprobs: torch.Tensor
    """log p(final_ids[k] | ids), fp32 on CPU."""


def buckets(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Indices sorted by length, cut so that rows x longest row stays within `max_tokens`."""
    out: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if out and (len(out[-1]) + 1) * lengths[i] <= max_tokens:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def pad_id(loaded: LoadedModel) -> int:
    tok = loaded.tokenizer
    for candidate in (tok.pad_token_id, tok.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def logits_of(loaded: LoadedModel, hidden: torch.Tensor) -> torch.Tensor:
    """The LM head on decoder hidden states, as the model's own forward would apply it, in fp32."""
    model = loaded.model
    logits = model.get_output_embeddings()(hidden).float()
    cfg = model.config
    # The few architectures that post-process logits in their forward (Granite, Cohere, Gemma 2).
    if scale := getattr(cfg, "logits_scaling", None):
        logits = logits / scale
    if scale := getattr(cfg, "logit_scale", None):
        logits = logits * scale
    if cap := getattr(cfg, "final_logit_softcapping", None):
        logits = cap * torch.tanh(logits / cap)
    return logits


def _pad(
    seqs: list[list[int]], pad: int, side: Literal["right", "left"], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """input_ids, attention_mask, position_ids and each row's offset of its first real token."""
    width = max(len(s) for s in seqs)
    starts = [0 if side == "right" else width - len(s) for s in seqs]
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, (s, start) in enumerate(zip(seqs, starts, strict=True)):
        ids[r, start : start + len(s)] = torch.tensor(s, dtype=torch.long)
        mask[r, start : start + len(s)] = 1
    # Real tokens count 0..n-1 from their own start; left padding needs this, right is arange.
    positions = (mask.cumsum(1) - 1).clamp(min=0) if side == "left" else torch.arange(width)
    positions = positions.expand(len(seqs), width)
    return ids.to(device), mask.to(device), positions.to(device), starts


def _chunked_logprobs(loaded: LoadedModel, hidden: torch.Tensor, targets: torch.Tensor):
    out = []
    for c in range(0, hidden.shape[0], LOGIT_CHUNK):
        logits = logits_of(loaded, hidden[c : c + LOGIT_CHUNK])
        picked = logits.gather(1, targets[c : c + LOGIT_CHUNK, None]).squeeze(1)
        out.append(picked - torch.logsumexp(logits, dim=-1))
    return torch.cat(out) if out else hidden.new_zeros(0, dtype=torch.float32)


def _score_batch(
    loaded: LoadedModel, rows: list[Row], side: Literal["right", "left"], stats: ProbeStats
) -> list[RowScores]:
    ids, mask, positions, starts = _pad([r.ids for r in rows], pad_id(loaded), side, loaded.device)
    decoder = loaded.model.get_decoder()
    hidden = decoder(
        input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False
    ).last_hidden_state
    stats.forward_passes += 1
    stats.tokens_forwarded += int(mask.sum())
    # Token t of a row is predicted by the hidden state at t-1.
    where_b, where_t, targets, lasts = [], [], [], []
    for r, (row, start) in enumerate(zip(rows, starts, strict=True)):
        n = len(row.ids) - row.score_from
        where_b += [r] * n
        where_t += range(start + row.score_from - 1, start + len(row.ids) - 1)
        targets += row.ids[row.score_from :]
        lasts.append(start + len(row.ids) - 1)
    device = hidden.device

    def index(values: list[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long, device=device)

    picked = hidden[index(where_b), index(where_t)]
    token_lp = _chunked_logprobs(loaded, picked, index(targets)).cpu()
    final_lp = torch.log_softmax(
        logits_of(loaded, hidden[torch.arange(len(rows), device=device), lasts]), dim=-1
    ).cpu()
    out, at = [], 0
    for r, row in enumerate(rows):
        n = len(row.ids) - row.score_from
        out.append(RowScores(token_lp[at : at + n], final_lp[r, list(row.final_ids)]))
        at += n
    return out


def score_rows(
    loaded: LoadedModel,
    rows: list[Row],
    stats: ProbeStats,
    *,
    padding_side: Literal["right", "left"] = "right",
    max_batch_tokens: int = MAX_BATCH_TOKENS,
) -> list[RowScores]:
    """Score every row; the result for a row does not depend on which rows share its batch."""
    for row in rows:
        if not 1 <= row.score_from <= len(row.ids):
            raise ValueError(f"score_from must be in 1..{len(row.ids)}, got {row.score_from}")
    results: list[RowScores | None] = [None] * len(rows)
    with torch.inference_mode():
        for bucket in buckets([len(r.ids) for r in rows], max_batch_tokens):
            scored = _score_batch(loaded, [rows[i] for i in bucket], padding_side, stats)
            for i, s in zip(bucket, scored, strict=True):
                results[i] = s
    return results  # type: ignore[return-value]
