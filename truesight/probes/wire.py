"""HTTP shapes of the probe endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ProbeRequest(BaseModel):
    """Body of POST /v1/probes/{name}."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(default=None, description="Accepted and ignored, as in /v1/messages.")
    texts: list[str] = Field(min_length=1, description="Texts to probe; one result each, in order.")
    contexts: list[str] | None = Field(
        default=None, description="Optional, one per text: conditioned on, not read."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Probe parameters; omitted ones take their defaults."
    )


class ProbeResponse(BaseModel):
    """Body of a successful POST /v1/probes/{name}."""

    model: str = Field(description="The model that produced the results.")
    probe: str
    results: list[dict[str, Any]] = Field(description="One per text, shaped by the probe.")


class ProbeInfo(BaseModel):
    """One probe in GET /v1/probes."""

    name: str
    description: str
    params: dict[str, Any] = Field(description="Parameter names and their defaults.")


class TrainedProbeInfo(BaseModel):
    """One trained probe in the worker's probes folder, usable with `linear` and `tokens`."""

    name: str
    model: str = Field(description="The model it was trained on.")
    matches_model: bool = Field(description="Trained on this worker's weights (else refused).")
    layer: int
    positive_label: str
    negative_label: str
    heldout_auroc: float
    bow_auroc: float | None = Field(description="The bag-of-words baseline's held-out AUROC.")
    variant: str
    threshold_1pct_fpr: float
    n_train: int
    trained_at: str


class ProbeListing(BaseModel):
    """Body of GET /v1/probes."""

    model: str
    probes: list[ProbeInfo]
    trained_probes: list[TrainedProbeInfo] = Field(
        default_factory=list, description="Values for params.probe of `linear` and `tokens`."
    )


class TrainRequest(BaseModel):
    """Body of POST /v1/trained-probes: train a linear probe on the worker's own model."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Probe name, then usable as params.probe of linear and tokens.")
    dataset: str = Field(description="The dataset file's contents (JSONL, as protocols/data/).")
    source: str = Field(default="dataset.jsonl", description="Names the dataset in errors.")
    variant: Literal["as_written", "same_statement"] = "as_written"
    layer: int | float | None = Field(
        default=None,
        description="Residual layer; a float in (0, 1) is a share of the depth; default the "
        "middle.",
    )
    c: float = Field(default=1.0, gt=0, description="Inverse L2 strength of the regression.")
    control: str | None = Field(
        default=None, description="JSONL of negatives for the 1%-FPR threshold (else test split)."
    )
    transfer: str | None = Field(
        default=None,
        description="A transfer (out-of-distribution) set's contents, JSONL as the dataset: the "
        "probe, its random-weight control and the bag of words are scored on every line.",
    )
    transfer_source: str = Field(
        default="transfer.jsonl", description="Names the transfer set in errors and results."
    )
    random_seed: int | None = Field(
        default=None,
        description="Also train the recipe on a random-weight copy of the model, its weights "
        "initialised from this seed (once; kept beside the probe).",
    )


class TrainResponse(BaseModel):
    """Body of a successful POST /v1/trained-probes."""

    probe: dict[str, Any] = Field(description="The probe's probe.json (ProbeMeta).")
    trained: bool = Field(description="False when an identical probe was already there.")
    seconds: float
    validity: dict[str, Any] | None = Field(
        default=None,
        description="truesight.validity.Validity, when a transfer set or random_seed was given.",
    )


class ReadoutSpec(BaseModel):
    """One probe of a fused readout request."""

    model_config = ConfigDict(extra="forbid")
    probe: str = Field(description="A probe listed by GET /v1/probes.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Its parameters; omitted ones take their defaults."
    )
    name: str | None = Field(
        default=None,
        description="Key of its result in each text's readouts (default the probe's name); "
        "needed to ask for one probe twice, e.g. `linear` with two trained probes.",
    )
    context: bool = Field(
        default=True,
        description="Read the text after its context (false: the text alone, a second pass).",
    )

    @property
    def key(self) -> str:
        return self.name or self.probe


class ReadoutRequest(BaseModel):
    """Body of POST /v1/readouts: several probes on each text, from one forward pass per text."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(default=None, description="Accepted and ignored, as in /v1/messages.")
    texts: list[str] = Field(min_length=1, description="Texts to read; one entry each, in order.")
    contexts: list[str] | None = Field(
        default=None, description="Optional, one per text: conditioned on, not read."
    )
    probes: list[ReadoutSpec] = Field(min_length=1, description="The probes to run on each text.")


class Readout(BaseModel):
    """One probe's readout of one text, or why there is none."""

    result: dict[str, Any] | None = Field(default=None, description="Shaped by the probe.")
    error: str | None = Field(
        default=None, description="Why this text cannot be read by this probe (e.g. too long)."
    )


class ReadoutResponse(BaseModel):
    """Body of a successful POST /v1/readouts."""

    model: str = Field(description="The model that produced the results.")
    results: list[dict[str, Readout]] = Field(
        description="One per text: each probe's readout by its name (ReadoutSpec.key)."
    )
