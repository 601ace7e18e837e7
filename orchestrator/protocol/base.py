"""What every part of the protocol schema shares: strict models, the id patterns, and the
model references (subjects, judges, the analyst)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
)

SLUG = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""An id that is never split on '.': letters, digits, '_', '-' and '.', up to 64 characters."""
KEY = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
"""A name that becomes part of a cell key or item id (joined with '.'): no '.' of its own."""
Scalar = str | int | float | bool


def probe_layer(value: object) -> int | float:
    """A probe's residual layer as a protocol (`probes.train.<name>.layer`) or `research probes
    train --layer` gives it: a layer number (0 = the embeddings), or a share of the model's depth
    between 0 and 1 (0.75: three quarters up, whatever the model). Text is read as a number.
    ValueError in the researcher's words otherwise."""
    number = value
    if isinstance(value, str):
        try:
            number = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            number = value
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int | float):
        problem = "is not a number"
    elif isinstance(number, int):
        problem = None if number >= 0 else "is negative"
    else:
        problem = None if 0 < number < 1 else "is a fraction outside 0..1"
    if problem is not None:
        raise ValueError(
            f"{value!r} {problem}: give a layer number (0, 1, 2, ...) or a share of the model's "
            "depth between 0 and 1 (0.75: three quarters up)"
        )
    return number


Layer = Annotated[int | float, BeforeValidator(probe_layer)]


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
