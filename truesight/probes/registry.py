"""The probes the worker serves, by name.

`PROBES` are the zero-shot readouts; `with_trained(store)` adds `linear` and `tokens`, which apply
the trained probes of one probes folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from truesight.probes import author, followup, surprisal
from truesight.probes.linear import ProbeStore
from truesight.probes.trained import LinearResult, TokensResult, TrainedParams, TrainedProbes


@dataclass(frozen=True)
class Probe:
    """A named readout: how to validate parameters, tokenize inputs and compute results."""

    name: str
    description: str
    params: type[BaseModel]
    """Parameter model; every field has a default, unknown fields are rejected."""
    result: type[BaseModel]
    prepare: Callable[..., list[Any]]
    """(loaded, inputs, params) -> one prepared item per input; raises InvalidRequest."""
    compute: Callable[..., list[BaseModel]]
    """(loaded, prepared, params, stats) -> one result per prepared item, in order."""
    version: int = 1
    """Part of the cache key: bump it when a change alters results."""
    cache_salt: Callable[[Any], str] | None = None
    """(params) -> extra cache-key material, for results that depend on files (trained probes)."""


PROBES: dict[str, Probe] = {
    p.name: p
    for p in (
        Probe(
            name="surprisal",
            description="Per-token surprisal (nats) of the text given an optional context: mean, "
            "perplexity, p90, max and the most surprising spans.",
            params=surprisal.SurprisalParams,
            result=surprisal.SurprisalResult,
            prepare=surprisal.prepare,
            compute=surprisal.compute,
        ),
        Probe(
            name="author",
            description="Zero-shot log-odds of attributes of the text's implied author "
            "(sincere vs insincere, ...), calibrated against a content-free text.",
            params=author.AuthorParams,
            result=author.AuthorResult,
            prepare=author.prepare,
            compute=author.compute,
        ),
        Probe(
            name="followup",
            description="Logit of ' Yes' minus ' No' after a yes/no question appended to the text.",
            params=followup.FollowupParams,
            result=followup.FollowupResult,
            prepare=followup.prepare,
            compute=followup.compute,
        ),
    )
}


def with_trained(store: ProbeStore) -> dict[str, Probe]:
    """PROBES plus `linear` and `tokens` over the trained probes in `store`."""
    trained = TrainedProbes(store)
    return {
        **PROBES,
        "linear": Probe(
            name="linear",
            description="A trained linear probe (params.probe) on the mean residual stream of "
            "the text's tokens: score, probability and whether it passes the 1%-FPR threshold.",
            params=TrainedParams,
            result=LinearResult,
            prepare=trained.prepare,
            compute=trained.compute_linear,
            cache_salt=trained.cache_salt,
        ),
        "tokens": Probe(
            name="tokens",
            description="A trained linear probe (params.probe) applied to each token's residual "
            "stream: per-token scores with character offsets, for a heatmap.",
            params=TrainedParams,
            result=TokensResult,
            prepare=trained.prepare,
            compute=trained.compute_tokens,
            cache_salt=trained.cache_salt,
        ),
    }
