"""The probes the worker serves, by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from truesight.probes import author, followup, surprisal


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
