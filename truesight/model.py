"""Load a causal LM and its tokenizer onto the best available device."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from truesight import smollm2
from truesight.paths import DEFAULT_CACHE_DIR

log = logging.getLogger(__name__)

# Used when neither the config nor the tokenizer states a usable context length.
_FALLBACK_CONTEXT = 2048


@dataclass
class LoadedModel:
    """A model ready for generation, with what the server needs to know about it."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    """Shown in /health and the startup line."""
    device: torch.device
    dtype: torch.dtype
    context_length: int
    """Prompt plus generated tokens may not exceed this."""

    def eos_ids(self) -> set[int]:
        """The tokens that end a reply: generation_config's EOS ids, else the tokenizer's."""
        ids = self.model.generation_config.eos_token_id
        if ids is None:
            ids = self.tokenizer.eos_token_id
        return set(ids) if isinstance(ids, list) else {ids} if ids is not None else set()


def pick_device(device: str = "auto") -> torch.device:
    """Resolve "auto" to cuda, then mps, then cpu; pass any explicit device name through."""
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _context_length(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """The smaller of the model's positions and the tokenizer's limit, ignoring sentinel values."""
    candidates = [
        getattr(model.config, "max_position_embeddings", None),
        getattr(tokenizer, "model_max_length", None),
    ]
    # Tokenizers without a stated limit report a huge sentinel (int(1e30)).
    usable = [int(c) for c in candidates if isinstance(c, int) and 0 < c < 10_000_000]
    return min(usable) if usable else _FALLBACK_CONTEXT


def load_model(spec: str, device: str = "auto", cache_dir: Path = DEFAULT_CACHE_DIR) -> LoadedModel:
    """Load `spec`: "smollm2" (the default offline model, converted once into `cache_dir`), a
    local directory, or a hub model id.

    bf16 on a GPU, fp32 on CPU (CPU bf16 matmuls are slow and lossy), SDPA attention, eval mode.
    """
    if spec == "smollm2":
        source, name = str(smollm2.ensure_cached(cache_dir)), smollm2.MODEL_NAME
    elif Path(spec).is_dir():
        source, name = spec, Path(spec).resolve().name
    else:
        source, name = spec, spec
    target = pick_device(device)
    dtype = torch.float32 if target.type == "cpu" else torch.bfloat16
    log.info("loading %s on %s (%s)", name, target, dtype)
    # Progress bars would write to the terminal from library code; keep them off while loading.
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, attn_implementation="sdpa"
        )
    finally:
        hf_logging.enable_progress_bar()
    model.to(target)
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=name,
        device=target,
        dtype=dtype,
        context_length=_context_length(model, tokenizer),
    )
