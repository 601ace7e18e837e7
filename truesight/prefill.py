"""Start each prompt from its cached prefix, and cache it at its breakpoints, before `generate`.

For one prompt: find the longest cached prefix that ends at or before its last `cache_control`
breakpoint (the API reads the cache only there too), prefill from it through each later
breakpoint, storing each, and hand `generate` the KV it ended with. For a batch, every row does
this on its own (prefill gains little from batching on a CPU), then `padded_batch` lines the rows
up: each row's cached KV right-aligned at one column, its uncached rest right-aligned after it,
padding masked in between. So rows whose cached prefixes differ in length still share one
`generate`, and each reuses its own prefix.

The token counts follow the Messages API's `usage`: `read` tokens came from the cache, `written`
ones were prefilled and stored, and the rest of the prompt is plain input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from truesight.model import LoadedModel
from truesight.prefix_cache import KV, PrefixCache, as_cache, batched, reusable


@dataclass(frozen=True)
class RowPrefix:
    """Where one prompt's generation starts, and how its prompt tokens count."""

    length: int = 0
    """Leading prompt tokens whose KV is in `kv`."""
    kv: KV | None = None
    read: int = 0
    """Prompt tokens read from the cache."""
    written: int = 0
    """Prompt tokens prefilled and stored in the cache."""


def supports_reuse(loaded: LoadedModel) -> bool:
    """Whether this model's KV can be cached by prefix (full attention on every layer)."""
    return reusable(DynamicCache(config=loaded.model.config))


def prepare_row(
    loaded: LoadedModel, store: PrefixCache, ids: Sequence[int], points: Sequence[int]
) -> RowPrefix:
    """Read the longest cached prefix of `ids` up to its last breakpoint; prefill and store
    through every later breakpoint. No breakpoints, no cache: as on the API."""
    # The last prompt token is always fed to `generate`, which needs one uncached token.
    points = sorted({p for p in points if 0 < p < len(ids)})
    if not points:
        return RowPrefix()
    read, kv = store.longest(ids, at_most=points[-1])
    length, written = read, 0
    later = [p for p in points if p > read]
    if later:
        cache = as_cache(kv)
        for point in later:
            segment = torch.tensor([list(ids[length:point])], device=loaded.device)
            with torch.inference_mode():
                # only the KV is wanted: one row of logits, not one per prompt token
                loaded.model(input_ids=segment, cache=cache, use_cache=True, logits_to_keep=1)
            if store.store(ids[:point], cache):
                written += point - length
            length = point
        kv = tuple((k, v) for k, v, *_ in cache)
    return RowPrefix(length=length, kv=kv, read=read, written=written)


@dataclass(frozen=True)
class PaddedBatch:
    """Inputs for one `generate` over rows that start from cached prefixes."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    cache: DynamicCache | None
    """None when no row starts from a cached prefix."""


def padded_batch(
    loaded: LoadedModel, rows: Sequence[Sequence[int]], prefixes: Sequence[RowPrefix], pad: int
) -> PaddedBatch:
    """Columns `[pad | cached prefix | pad | rest]` per row; with no cached prefix this is plain
    left padding, and the cache is None."""
    cached = max(p.length for p in prefixes)
    rest = max(len(ids) - p.length for ids, p in zip(rows, prefixes, strict=True))
    tokens, mask = [], []
    for ids, p in zip(rows, prefixes, strict=True):
        head, tail = list(ids[: p.length]), list(ids[p.length :])
        gap1, gap2 = cached - len(head), rest - len(tail)
        tokens.append([pad] * gap1 + head + [pad] * gap2 + tail)
        mask.append([0] * gap1 + [1] * len(head) + [0] * gap2 + [1] * len(tail))
    cache = None
    if cached:
        like = next(p.kv for p in prefixes if p.kv is not None)
        cache = batched([p.kv for p in prefixes], cached, like)
    return PaddedBatch(
        input_ids=torch.tensor(tokens, device=loaded.device),
        attention_mask=torch.tensor(mask, device=loaded.device),
        cache=cache,
    )
