"""Next-token log-probs after each (prefix, suffix) pair, with one prefill per prefix.

Author and follow-up probes append several short suffixes to the same text. Each mini-batch of
prefixes runs once with a KV cache; the cache is repeated once per suffix and all suffixes run in
one more forward pass, continuing each prefix at its own length. Prefixes are right-padded, so the
padding sits between a prefix and its suffix: it is masked out, and the suffix's position ids
continue from the prefix's real length, which makes the result the same as running
prefix + suffix as one sequence (`naive=True` does exactly that, for tests and comparison).
"""

from __future__ import annotations

import inspect

import torch

from truesight.model import LoadedModel
from truesight.probes.batch import (
    MAX_BATCH_TOKENS,
    ProbeStats,
    Row,
    buckets,
    logits_of,
    pad_id,
    score_rows,
)


def prefix_suffix_logprobs(
    loaded: LoadedModel,
    prefixes: list[list[int]],
    suffixes: list[list[int]],
    query_ids: list[int],
    stats: ProbeStats,
    *,
    naive: bool = False,
    max_batch_tokens: int = MAX_BATCH_TOKENS,
) -> torch.Tensor:
    """log p(query_ids[q] | prefixes[p] + suffixes[s]) as a (P, S, Q) fp32 CPU tensor.

    Every prefix and suffix must hold at least one token.
    """
    if naive:
        rows = [
            Row(ids=p + s, score_from=len(p) + len(s), final_ids=tuple(query_ids))
            for p in prefixes
            for s in suffixes
        ]
        scored = score_rows(loaded, rows, stats, max_batch_tokens=max_batch_tokens)
        flat = torch.stack([r.final_logprobs for r in scored])
        return flat.view(len(prefixes), len(suffixes), len(query_ids))
    out = torch.empty(len(prefixes), len(suffixes), len(query_ids))
    longest_suffix = max(len(s) for s in suffixes)
    # The suffix pass attends over (prefix + suffix) for every suffix: budget for that.
    lengths = [(len(p) + longest_suffix) * len(suffixes) for p in prefixes]
    with torch.inference_mode():
        for bucket in buckets(lengths, max_batch_tokens):
            group = [prefixes[i] for i in bucket]
            out[bucket] = _run(loaded, group, suffixes, query_ids, stats)
    return out


def _cache_arg(decoder: torch.nn.Module) -> str:
    """transformers 5.2x calls the KV cache `cache`; earlier releases `past_key_values`."""
    names = inspect.signature(decoder.forward).parameters
    return "cache" if "cache" in names else "past_key_values"


def _right_pad(seqs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], dtype=torch.long)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], dtype=torch.long)
    return ids, mask


def _run(
    loaded: LoadedModel,
    prefixes: list[list[int]],
    suffixes: list[list[int]],
    query_ids: list[int],
    stats: ProbeStats,
) -> torch.Tensor:
    decoder, pad = loaded.model.get_decoder(), pad_id(loaded)
    pre_ids, pre_mask = (t.to(loaded.device) for t in _right_pad(prefixes, pad))
    prefill = decoder(input_ids=pre_ids, attention_mask=pre_mask, use_cache=True)
    stats.forward_passes += 1
    stats.tokens_forwarded += int(pre_mask.sum())
    cache = kv_cache(decoder, prefill)
    return suffix_logprobs(loaded, cache, pre_mask, suffixes, query_ids, stats)


def kv_cache(decoder: torch.nn.Module, output: object) -> object:
    """The KV cache a decoder forward with use_cache=True returned."""
    return getattr(output, _cache_arg(decoder))


def suffix_logprobs(
    loaded: LoadedModel,
    cache: object,
    pre_mask: torch.Tensor,
    suffixes: list[list[int]],
    query_ids: list[int],
    stats: ProbeStats,
) -> torch.Tensor:
    """(P, S, Q) log-probs after each suffix, continuing a right-padded prefill's KV `cache`
    (its attention mask `pre_mask`); the cache is expanded in place and is spent after."""
    device, decoder, pad = loaded.device, loaded.model.get_decoder(), pad_id(loaded)
    n_pre, n_suf = pre_mask.shape[0], len(suffixes)
    cache.batch_repeat_interleave(n_suf)  # row p * n_suf + s continues prefix p with suffix s

    suf_ids, suf_mask = (t.to(device) for t in _right_pad(suffixes, pad))
    suf_ids, suf_mask = suf_ids.repeat(n_pre, 1), suf_mask.repeat(n_pre, 1)
    pre_lens = pre_mask.sum(1).repeat_interleave(n_suf)
    mask = torch.cat([pre_mask.repeat_interleave(n_suf, dim=0), suf_mask], dim=1)
    positions = pre_lens[:, None] + torch.arange(suf_ids.shape[1], device=device)
    step = decoder(
        input_ids=suf_ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        **{_cache_arg(decoder): cache},
    )
    stats.forward_passes += 1
    stats.suffix_passes += 1
    stats.tokens_forwarded += int(suf_mask.sum())
    last = suf_mask.sum(1) - 1
    hidden = step.last_hidden_state[torch.arange(n_pre * n_suf, device=device), last]
    logprobs = torch.log_softmax(logits_of(loaded, hidden), dim=-1)[:, query_ids]
    return logprobs.view(n_pre, n_suf, len(query_ids)).cpu()
