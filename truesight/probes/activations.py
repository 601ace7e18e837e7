"""Residual-stream activations at one layer, read from a forward pass stopped at that layer.

Layer numbering follows `output_hidden_states=True`: layer 0 is the embeddings, layer L (1 <= L <
n) the output of decoder layer L-1, and layer n the final norm of the last layer's output. A
forward hook on the module that produces layer L records its output and raises `_Stop`, so the
layers above L are never computed. Rows are right-padded and batched as in `batch`; a row's
context (and BOS) is conditioned on but not read: only the text's own positions are averaged or
returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from truesight.model import LoadedModel
from truesight.probes.batch import MAX_BATCH_TOKENS, ProbeStats, _pad, buckets, pad_id


@dataclass(frozen=True)
class ActRow:
    """Token ids of one input; positions `read_from` .. len(ids)-1 are the text's own tokens."""

    ids: list[int]
    read_from: int


@dataclass
class RowActivations:
    mean: torch.Tensor
    """(d,) mean over the text's tokens, fp32 on CPU."""
    tokens: torch.Tensor | None
    """(n_text_tokens, d) per token when asked for, fp32 on CPU."""


class _Stop(Exception):
    """Raised from the hook to abandon the forward pass once layer L is computed."""


def n_layers(loaded: LoadedModel) -> int:
    return len(loaded.model.get_decoder().layers)


def resolve_layer(loaded: LoadedModel, layer: int | float | None) -> int:
    """`layer`, or the middle layer (n // 2) when None; a float in (0, 1) is a share of the
    depth (0.75 of 30 layers is layer 22), so one protocol suits models of any depth.
    ValueError outside 0..n."""
    n = n_layers(loaded)
    if isinstance(layer, float):
        if not 0 < layer < 1:
            raise ValueError(f"a fractional layer must be between 0 and 1, got {layer}")
        layer = int(layer * n)
    chosen = n // 2 if layer is None else layer
    if not 0 <= chosen <= n:
        raise ValueError(f"layer must be in 0..{n} for {loaded.name}, got {chosen}")
    return chosen


def _source(decoder: nn.Module, layer: int) -> nn.Module:
    """The module whose output is hidden_states[layer]."""
    if layer == 0:
        return decoder.embed_tokens
    if layer == len(decoder.layers):
        return decoder.norm
    return decoder.layers[layer - 1]


def hidden_at(
    loaded: LoadedModel, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, layer: int
) -> torch.Tensor:
    """(B, T, d) hidden states at `layer`, computing nothing above it."""
    decoder = loaded.model.get_decoder()
    caught: list[torch.Tensor] = []

    def hook(_module: nn.Module, _args: object, output: object) -> None:
        caught.append(output[0] if isinstance(output, tuple) else output)
        raise _Stop

    handle = _source(decoder, layer).register_forward_hook(hook)
    try:
        decoder(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not caught:
        raise RuntimeError(f"layer {layer} was never reached in the forward pass")
    return caught[0]


def residuals(
    loaded: LoadedModel,
    rows: list[ActRow],
    layer: int,
    stats: ProbeStats,
    *,
    per_token: bool = False,
    max_batch_tokens: int = MAX_BATCH_TOKENS,
) -> list[RowActivations]:
    """Activations of every row at `layer`; a row's result does not depend on its batch-mates."""
    for row in rows:
        if not 0 <= row.read_from < len(row.ids):
            raise ValueError(f"read_from must be in 0..{len(row.ids) - 1}, got {row.read_from}")
    out: list[RowActivations | None] = [None] * len(rows)
    with torch.inference_mode():
        for bucket in buckets([len(r.ids) for r in rows], max_batch_tokens):
            batch = [rows[i] for i in bucket]
            ids, mask, positions, _ = _pad(
                [r.ids for r in batch], pad_id(loaded), "right", loaded.device
            )
            hidden = hidden_at(loaded, ids, mask, positions, layer)
            stats.forward_passes += 1
            stats.tokens_forwarded += int(mask.sum())
            for r, (i, row) in enumerate(zip(bucket, batch, strict=True)):
                own = hidden[r, row.read_from : len(row.ids)].float()
                out[i] = RowActivations(own.mean(dim=0).cpu(), own.cpu() if per_token else None)
    return out  # type: ignore[return-value]
