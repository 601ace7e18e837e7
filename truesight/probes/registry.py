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
from truesight.probes.fused import Needs
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
    plan: Callable[..., tuple[list[int], Needs]] | None = None
    """(loaded, prepared item, params) -> the token sequence a fused pass reads and what this
    probe needs of it; None: the probe cannot share a pass (see `fused`)."""
    read: Callable[..., BaseModel] | None = None
    """(loaded, prepared item, TextPass, params, calibration) -> the result from a fused pass."""


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
            plan=surprisal.plan,
            read=surprisal.read,
        ),
        Probe(
            name="author",
            description="Zero-shot log-odds of attributes of the text's implied author "
            "(sincere vs insincere, ...), calibrated against a content-free text.",
            params=author.AuthorParams,
            result=author.AuthorResult,
            prepare=author.prepare,
            compute=author.compute,
            plan=author.plan,
            read=author.read,
        ),
        Probe(
            name="followup",
            description="Logit of ' Yes' minus ' No' after a yes/no question appended to the text.",
            params=followup.FollowupParams,
            result=followup.FollowupResult,
            prepare=followup.prepare,
            compute=followup.compute,
            plan=followup.plan,
            read=followup.read,
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
            plan=trained.plan,
            read=trained.read_linear,
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
            plan=trained.plan,
            read=trained.read_tokens,
        ),
    }
