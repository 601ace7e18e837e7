"""The `linear` and `tokens` probes: a trained linear probe applied to a text's activations.

`linear` scores the mean residual stream over the text's tokens (context conditioned on, not
averaged), exactly what `python -m truesight.train` fits on; `tokens` scores each token's own
activation with the same probe, for a heatmap. Probes come from the worker's probes folder (see
`linear.ProbeStore`) and must have been trained on the worker's model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from pydantic import BaseModel, ConfigDict, Field

from truesight.model import LoadedModel
from truesight.probes import linear
from truesight.probes.activations import ActRow, residuals
from truesight.probes.batch import ProbeStats
from truesight.probes.cache import weights_fingerprint
from truesight.probes.fused import Needs, TextPass
from truesight.probes.inputs import ProbeInput, TokenSpan, encode_located
from truesight.wire import InvalidRequest


class TrainedParams(BaseModel):
    """Parameters of the linear and tokens probes."""

    model_config = ConfigDict(extra="forbid")
    probe: str | None = Field(
        default=None,
        description="Name of a trained probe in the worker's probes folder "
        "(listed under trained_probes in GET /v1/probes).",
    )


class LinearResult(BaseModel):
    """The probe on the mean activation of the text's tokens."""

    score: float = Field(description="Decision function: log-odds of the positive label.")
    probability: float = Field(description="p(positive label) = sigmoid(score).")
    above_threshold: bool = Field(description="score > the probe's 1%-FPR threshold.")
    probe: str
    layer: int


class TokenScore(TokenSpan):
    """One token of the text and the probe's score of its activation."""

    score: float = Field(description="Decision function on this token's activation.")


class TokensResult(BaseModel):
    """Per-token probe scores, in text order."""

    tokens: list[TokenScore]
    probe: str
    layer: int


@dataclass
class TrainedProbes:
    """The served side of the probes folder: resolves names against the worker's model."""

    store: linear.ProbeStore
    _fingerprints: dict[int, str] = field(default_factory=dict)

    def fingerprint(self, loaded: LoadedModel) -> str:
        key = id(loaded.model)
        if key not in self._fingerprints:  # a pass over the weights: once per model
            self._fingerprints[key] = weights_fingerprint(loaded)
        return self._fingerprints[key]

    def resolve(self, loaded: LoadedModel, params: TrainedParams) -> linear.LinearProbe:
        available = ", ".join(self.store.names()) or "none"
        if params.probe is None:
            raise InvalidRequest(f"params.probe is required: a trained probe ({available})")
        try:
            return self.store.get(params.probe, self.fingerprint(loaded))
        except linear.ProbeError as e:
            raise InvalidRequest(str(e)) from e

    def cache_salt(self, params: TrainedParams) -> str:
        """Part of the cache key: a retrained probe of the same name gives fresh results."""
        return self.store.get(params.probe or "").meta.weights_sha256

    def prepare(self, loaded: LoadedModel, items: list[ProbeInput], params: TrainedParams):
        self.resolve(loaded, params)
        prepared = []
        for i, item in enumerate(items):
            enc = encode_located(loaded.tokenizer, item, i, loaded.context_length)
            if not enc.text:
                raise InvalidRequest(f"texts[{i}] has no tokens")
            prepared.append((item.text, ActRow(enc.ids, len(enc.prefix)), enc.offsets))
        return prepared

    def compute_linear(
        self, loaded: LoadedModel, prepared: list, params: TrainedParams, stats: ProbeStats
    ) -> list[LinearResult]:
        probe = self.resolve(loaded, params)
        acts = residuals(loaded, [row for _, row, _ in prepared], probe.meta.layer, stats)
        return [_linear(probe, a.mean) for a in acts]

    def compute_tokens(
        self, loaded: LoadedModel, prepared: list, params: TrainedParams, stats: ProbeStats
    ) -> list[TokensResult]:
        probe = self.resolve(loaded, params)
        rows = [row for _, row, _ in prepared]
        acts = residuals(loaded, rows, probe.meta.layer, stats, per_token=True)
        return [_tokens(probe, item, a.tokens) for item, a in zip(prepared, acts, strict=True)]

    def plan(
        self, loaded: LoadedModel, item: tuple, params: TrainedParams
    ) -> tuple[list[int], Needs]:
        """For a fused pass: the text's sequence and the probe's layer."""
        _, row, _ = item
        layer = self.resolve(loaded, params).meta.layer
        return row.ids, Needs(layers=frozenset({layer}))

    def read_linear(
        self, loaded: LoadedModel, item: tuple, seen: TextPass, params: TrainedParams, calibration
    ) -> LinearResult:
        probe, (_, row, _) = self.resolve(loaded, params), item
        return _linear(probe, seen.hidden[probe.meta.layer][row.read_from :].mean(dim=0))

    def read_tokens(
        self, loaded: LoadedModel, item: tuple, seen: TextPass, params: TrainedParams, calibration
    ) -> TokensResult:
        probe, (_, row, _) = self.resolve(loaded, params), item
        return _tokens(probe, item, seen.hidden[probe.meta.layer][row.read_from :])


def _linear(probe: linear.LinearProbe, mean: torch.Tensor) -> LinearResult:
    """The probe on the mean activation of the text's tokens."""
    score = float(probe.weights.score(mean.numpy()))
    return LinearResult(
        score=score,
        probability=float(linear.probability(score)),
        above_threshold=score > probe.meta.threshold_1pct_fpr,
        probe=probe.meta.name,
        layer=probe.meta.layer,
    )


def _tokens(probe: linear.LinearProbe, item: tuple, acts: torch.Tensor) -> TokensResult:
    """The probe on each token's activation (acts: (n_text_tokens, d))."""
    text, _, offsets = item
    scores = probe.weights.score(acts.numpy()).tolist()
    spans = [
        TokenScore(start=s, end=e, text=text[s:e], score=v)
        for (s, e), v in zip(offsets, scores, strict=True)
    ]
    return TokensResult(tokens=spans, probe=probe.meta.name, layer=probe.meta.layer)
