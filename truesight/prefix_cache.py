"""The worker's prompt cache: the KV of recent prompt prefixes, least recently used evicted first.

An entry is keyed by the exact token ids of a prefix and holds, per layer, the keys and values
that a forward over those tokens left in a `DynamicCache`. Entries are written at the prompt's
`cache_control` breakpoints (see `truesight.cache_points`) and read by any later prompt that
starts with the same tokens. A reader never gets the stored tensors themselves in a cache it can
extend: `as_cache` builds a fresh `DynamicCache`, whose first update copies them (`torch.cat`),
so a generation that continues from an entry cannot change it.

The store is bounded by bytes (`budget_bytes`); an entry larger than the whole budget is not kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

KV = tuple[tuple[torch.Tensor, torch.Tensor], ...]
"""(keys, values) per layer, each `[batch=1, heads, tokens, head_dim]`."""


@dataclass
class PrefixCacheStats:
    """Counters for /health."""

    entries: int = 0
    bytes: int = 0
    writes: int = 0
    """Entries stored."""
    hits: int = 0
    """Lookups that found a cached prefix."""
    evictions: int = 0
    tokens_read: int = 0
    """Prompt tokens served from the cache instead of prefilled."""


@dataclass
class _Entry:
    kv: KV
    nbytes: int


@dataclass
class PrefixCache:
    """An LRU of prompt-prefix KV caches within `budget_bytes`."""

    budget_bytes: int
    stats: PrefixCacheStats = field(default_factory=PrefixCacheStats)
    _entries: OrderedDict[tuple[int, ...], _Entry] = field(default_factory=OrderedDict)

    def longest(self, ids: Sequence[int], *, at_most: int) -> tuple[int, KV | None]:
        """The longest cached prefix of `ids` of at most `at_most` tokens: (its length, its KV),
        or (0, None). A hit becomes the most recently used entry."""
        best: tuple[int, ...] | None = None
        for key in self._entries:
            n = len(key)
            if n <= at_most and (best is None or n > len(best)) and tuple(ids[:n]) == key:
                best = key
        if best is None:
            return 0, None
        self._entries.move_to_end(best)
        self.stats.hits += 1
        self.stats.tokens_read += len(best)
        return len(best), self._entries[best].kv

    def store(self, ids: Sequence[int], cache: DynamicCache) -> bool:
        """Keep a copy of `cache` (the KV of exactly `ids`); False when it cannot fit at all."""
        kv = tuple((k.clone(), v.clone()) for k, v, *_ in cache)
        nbytes = sum(k.nbytes + v.nbytes for k, v in kv)
        if nbytes > self.budget_bytes:
            return False
        key = tuple(ids)
        if key in self._entries:
            self._drop(key)
        while self._entries and self.stats.bytes + nbytes > self.budget_bytes:
            self._drop(next(iter(self._entries)))
            self.stats.evictions += 1
        self._entries[key] = _Entry(kv, nbytes)
        self.stats.bytes += nbytes
        self.stats.writes += 1
        self.stats.entries = len(self._entries)
        return True

    def _drop(self, key: tuple[int, ...]) -> None:
        self.stats.bytes -= self._entries.pop(key).nbytes
        self.stats.entries = len(self._entries)

    def __contains__(self, ids: Sequence[int]) -> bool:
        return tuple(ids) in self._entries


def reusable(cache: DynamicCache) -> bool:
    """Whether prefixes of this model's cache can be stored and padded: only full-attention
    dynamic layers (a sliding-window layer forgets its oldest tokens)."""
    return all(type(layer) is DynamicLayer for layer in cache.layers)


def as_cache(kv: KV | None) -> DynamicCache:
    """A fresh `DynamicCache` holding `kv` (copied on its first update), or an empty one."""
    return DynamicCache() if kv is None else DynamicCache(ddp_cache_data=kv)


def batched(rows: Sequence[KV | None], width: int, like: KV) -> DynamicCache:
    """One cache for a batch: each row's prefix KV left-padded with zeros to `width` tokens.

    The padding columns are masked out by the attention mask the caller builds; the positions of
    a row's real tokens come from that mask too (`generate` counts them), so they match the
    positions the prefix was computed at.
    """
    layers = []
    for layer, (k0, v0) in enumerate(like):
        keys, values = [], []
        for kv in rows:
            k, v = kv[layer] if kv is not None else (k0[:, :, :0], v0[:, :, :0])
            pad = width - k.shape[2]
            keys.append(torch.nn.functional.pad(k, (0, 0, pad, 0)))
            values.append(torch.nn.functional.pad(v, (0, 0, pad, 0)))
        layers.append((torch.cat(keys), torch.cat(values)))
    return DynamicCache(ddp_cache_data=layers)
