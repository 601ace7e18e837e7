"""Every environment variable the orchestrator reads, as one typed object.

`Settings.from_env()` is called where a run or a command starts (a run's start or resume, a CLI
command), never at import, so a process (or a test) that changes the environment between runs
gets the new values. The README's "Configuration" table lists the same variables.

An empty variable counts as unset. Credentials are read here and nowhere else, held as
`SecretStr` (a repr or a traceback shows stars), and never written to the run directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_LOCAL_MODEL = "smollm2"
"""The offline model: SmolLM2-135M-Instruct, fetched and cached by the worker."""
DEFAULT_WORKER_URL = "http://127.0.0.1:8765"
DEFAULT_DESIGN_MODEL = "claude-sonnet-4-6"
"""The designer of `research design`: the judge model the shipped protocols use."""


class Settings(BaseModel):
    """What the environment configures. Each field's alias is its variable's name."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    runs_dir: Path = Field(
        Path("runs"),
        alias="RESEARCH_RUNS_DIR",
        description="Where run directories are created and looked up (`--runs-dir` wins).",
    )
    programs_dir: Path = Field(
        Path("programs"),
        alias="RESEARCH_PROGRAMS_DIR",
        description="Where research programmes live (`--programs-dir` wins).",
    )
    worker_urls: tuple[str, ...] = Field(
        (DEFAULT_WORKER_URL,),
        alias="RESEARCH_WORKER_URL",
        description="Base URL of the local worker; `research run` starts one there on loopback. "
        "Several, comma-separated: workers already running (e.g. on GPU hosts), probe requests "
        "sharded across them by text; generation for `local` models goes to the first.",
    )
    worker_token: SecretStr | None = Field(
        None,
        alias="RESEARCH_WORKER_TOKEN",
        description="Token the worker requires (needed when it listens beyond loopback).",
    )
    local_model: str = Field(
        DEFAULT_LOCAL_MODEL,
        alias="RESEARCH_LOCAL_MODEL",
        description="The worker's model offline and for probes: smollm2, a path or a hub id.",
    )
    design_model: str = Field(
        DEFAULT_DESIGN_MODEL,
        alias="RESEARCH_DESIGN_MODEL",
        description="The model that drafts protocols with `research design` (Anthropic API).",
    )
    local_timeout_s: float = Field(
        900.0,
        alias="RESEARCH_LOCAL_TIMEOUT",
        description="Seconds one call to the local worker may take (CPU generation is slow).",
    )
    worker_start_timeout_s: float = Field(
        1200.0,
        alias="RESEARCH_WORKER_START_TIMEOUT",
        description="Seconds to wait for a started worker to answer /health (first model fetch).",
    )
    cache_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "research",
        alias="RESEARCH_CACHE_DIR",
        description="The worker's cache: converted models, probe results, trained probes.",
    )
    anthropic_api_key: SecretStr | None = Field(
        None,
        alias="ANTHROPIC_API_KEY",
        description="Key for `provider: anthropic` models; needed only when a protocol calls one.",
    )
    anthropic_base_url: str | None = Field(
        None,
        alias="ANTHROPIC_BASE_URL",
        description="Another Messages-API endpoint for anthropic models (`base_url` wins).",
    )
    openai_api_key: SecretStr | None = Field(
        None,
        alias="OPENAI_API_KEY",
        description="Key for `provider: openai` models; needed only when a protocol calls one.",
    )
    openai_base_url: str | None = Field(
        None,
        alias="OPENAI_BASE_URL",
        description="An OpenAI-compatible endpoint (vLLM, llama.cpp, a gateway) for openai "
        "models (`base_url` wins); default api.openai.com.",
    )
    max_retries: int = Field(
        4,
        alias="RESEARCH_MAX_RETRIES",
        description="Retries the SDK makes on a failed call (timeouts, 429, 5xx) before giving up.",
    )
    timeout_s: float = Field(
        120.0,
        alias="RESEARCH_TIMEOUT",
        description="Seconds one call to a cloud model may take.",
    )
    retry_passes: int = Field(
        2,
        ge=0,
        alias="RESEARCH_RETRY_PASSES",
        description="After the SDK's retries: follow-up passes over failed subject calls, and "
        "tries of a failed judge or analyst call, before the run stops to be resumed.",
    )
    retry_wait_s: float = Field(
        15.0,
        ge=0,
        alias="RESEARCH_RETRY_WAIT_S",
        description="Seconds before the first of those passes or tries; each next waits twice "
        "as long.",
    )
    batch_poll_s: float = Field(
        30.0,
        alias="RESEARCH_BATCH_POLL_S",
        description="Seconds between looks at a message batch in flight (`batch: true` subjects).",
    )
    overlap_probes: bool = Field(
        True,
        alias="RESEARCH_OVERLAP_PROBES",
        description="With a remote judge, read the probes beside the evaluators (0: before "
        "them, as with a local judge).",
    )
    user: str = Field(
        "human",
        alias="USER",
        description="Who a checkpoint decision is recorded as when `--by` is not given "
        "(USER, else USERNAME).",
    )

    def worker_secret(self) -> str | None:
        """The worker token as text, for the one header that carries it."""
        return self.worker_token.get_secret_value() if self.worker_token else None

    def api_key(self) -> str | None:
        """The Anthropic API key as text, for the SDK client."""
        return self.anthropic_api_key.get_secret_value() if self.anthropic_api_key else None

    def openai_key(self) -> str | None:
        """The OpenAI API key as text, for the SDK client."""
        return self.openai_api_key.get_secret_value() if self.openai_api_key else None

    @property
    def worker_url(self) -> str:
        """The first worker: the one `local` models without a base_url generate on."""
        return self.worker_urls[0]

    @field_validator("worker_urls", mode="before")
    @classmethod
    def _url_list(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        urls = [u.strip().rstrip("/") for u in value.split(",")]
        if not all(urls):
            raise ValueError(f"an empty URL in the list {value!r}")
        if len(set(urls)) < len(urls):
            raise ValueError(f"a URL listed twice in {value!r}")
        return tuple(urls)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings in `environ` (default: this process's environment, read now)."""
        env = os.environ if environ is None else environ
        names = {f.alias for f in cls.model_fields.values()}
        values = {k: v for k, v in env.items() if k in names and v}
        if "USER" not in values and env.get("USERNAME"):  # Windows names the user USERNAME
            values["USER"] = env["USERNAME"]
        return cls.model_validate(values)
