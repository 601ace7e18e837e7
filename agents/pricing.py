"""Prices per million tokens (input, output) in USD, by model-name prefix.

From Anthropic's and OpenAI's public price lists; update when they change. The first matching
prefix wins, so a longer one goes before a shorter one it extends (gpt-4o-mini before gpt-4o).
Unknown models cost `None` (shown as unknown), never 0: an unpriced run must not look free.
"""

from __future__ import annotations

PRICES: list[tuple[str, float, float]] = [
    ("claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-3-7-sonnet", 3.0, 15.0),
    ("claude-haiku-4", 1.0, 5.0),
    ("claude-3-5-haiku", 0.8, 4.0),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4o", 2.50, 10.00),
]


CACHE_WRITE, CACHE_READ = 1.25, 0.1
"""Prompt-cache prices as multiples of the input price (5-minute cache)."""


def price_usd(
    model: str, input_tokens: int, output_tokens: int, cache_write: int = 0, cache_read: int = 0
) -> float | None:
    """USD for one call; `input_tokens` excludes the cache writes and reads, as the API counts."""
    for prefix, p_in, p_out in PRICES:
        if model.startswith(prefix):
            cached = cache_write * CACHE_WRITE + cache_read * CACHE_READ
            return ((input_tokens + cached) * p_in + output_tokens * p_out) / 1e6
    return None


def known(model: str) -> bool:
    return any(model.startswith(prefix) for prefix, _, _ in PRICES)
