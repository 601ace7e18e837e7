"""What every part of the protocol schema shares: strict models, the id patterns, and the
model references (subjects, judges, the analyst)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
)

SLUG = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""An id that is never split on '.': letters, digits, '_', '-' and '.', up to 64 characters."""
KEY = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
"""A name that becomes part of a cell key or item id (joined with '.'): no '.' of its own."""
Scalar = str | int | float | bool


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerationParams(Strict):
    max_tokens: PositiveInt = Field(1024, description="Maximum tokens to generate.")
    temperature: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Sampling temperature; omit for the model's default (newer Claude models "
        "accept only their default).",
    )
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    stop_sequences: list[str] = Field(default_factory=list, description="Stop strings.")


class ModelRef(Strict):
    provider: Literal["anthropic", "openai", "local"] = Field(
        description="`anthropic` for the Messages API, `openai` for OpenAI's Chat Completions "
        "API or any server that speaks it (subjects only), `local` for the research worker (or, "
        "with a base_url, any server of the Messages API: vLLM, llama.cpp's llama-server)."
    )
    model: str = Field(min_length=1, description="Model name, e.g. claude-sonnet-4-5.")
    params: GenerationParams = Field(default_factory=GenerationParams)
    base_url: str | None = Field(
        None,
        description="Endpoint override; default ANTHROPIC_BASE_URL, OPENAI_BASE_URL (e.g. "
        "http://127.0.0.1:8000/v1 for vLLM) or the local worker.",
    )
    concurrency: PositiveInt = Field(8, description="Calls in flight at once for this model.")


class Subject(ModelRef):
    id: str = Field(pattern=KEY, description="Short id used in cell keys and item ids.")
    batch: bool = Field(
        False,
        description="Send this subject's calls as one Anthropic Message Batch (half the price, "
        "results within 24 hours) instead of one call at a time; the run waits for the batch, "
        "and a resumed run collects the same batch. Ignored for `local` subjects; refused for "
        "`openai` ones.",
    )
