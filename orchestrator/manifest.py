"""A run's manifest.json, readable without opening the run (listings, `research status`).

Kept apart from `rundir` so that listing runs loads pydantic and nothing else: opening a run
loads the records store, and with it the LLM client.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from orchestrator.settings import Settings

Status = Literal[
    "created", "running", "awaiting_approval", "interrupted", "rejected", "failed", "complete"
]


class Manifest(BaseModel):
    run_id: str = Field(description="The run directory's name.")
    protocol_id: str
    protocol_sha256: str = Field(description="sha256 of protocol.yaml as frozen in the run dir.")
    preregistered_sha256: str | None = Field(
        None,
        description="sha256 of protocol.yaml when the run started: the pre-registration. It "
        "differs from protocol_sha256 only after an approved amendment, and keys the call "
        "ledger, so an amendment never makes a call be paid again.",
    )
    data_sha256: dict[str, str] = Field(
        default_factory=dict,
        description="sha256 of each data file the protocol refers to, frozen beside it.",
    )
    protocol_source: str = Field(description="Where the protocol was copied from.")
    code_commit: str | None = Field(description="git commit of the research code, if known.")
    code_dirty: bool | None = Field(description="Whether that checkout had uncommitted changes.")
    size: Literal["pilot", "full"]
    offline: bool = Field(description="Subjects and judge replaced by the local worker's model.")
    local_model: str | None = Field(None, description="The worker model used when offline.")
    models: list[str] = Field(description="Subject and judge models, as called.")
    created: str
    updated: str
    status: Status
    reason: str | None = Field(
        None,
        description="Why the run stopped, when its status is failed or interrupted: the error in "
        'one line ("cannot write runs/x: No space left on device"). Cleared by the next status.',
    )
    program: str | None = Field(
        None, description="The research programme the run joined (`research run --program`)."
    )
    program_dir: str | None = Field(
        None, description="That programme's directory, absolute: where its end is recorded."
    )


def program_line(m: Manifest, base: Path | None = None) -> str | None:
    """`programme: NAME (programs/NAME/PROGRAM.md)` for a run that joined one, else None. The
    path is relative to `base` (a run's directory: what its SUMMARY.md says must not depend on
    where the process that wrote it started), or to the working directory when under it."""
    if m.program is None:
        return None
    if not m.program_dir:
        return f"programme: {m.program} (?)"
    where = Path(m.program_dir) / "PROGRAM.md"
    if base is not None:
        return f"programme: {m.program} ({os.path.relpath(where, base.resolve())})"
    try:
        where = where.relative_to(Path.cwd())
    except ValueError:
        pass
    return f"programme: {m.program} ({where})"


def runs_root(runs_dir: str | Path | None) -> Path:
    """`runs_dir` if given, else RESEARCH_RUNS_DIR, else ./runs."""
    return Path(runs_dir or Settings.from_env().runs_dir)


def read_manifest(root: Path) -> Manifest | None:
    """A run's manifest without taking its lock (for listings)."""
    try:
        return Manifest.model_validate_json((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
