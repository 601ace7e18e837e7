"""The state file of one subject's message batches: each batch we meant to create, and what came
of it. Rewritten whole (temp file + rename) at every change, so a process killed at any point
leaves the last complete state.

An entry is written as `creating` *before* the creation request is sent, so a batch that the API
created but whose reply we never saw (connection lost, process killed) is known to exist
somewhere and is looked for before anything is created again (see `agents.batch_create`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from memory import utc_stamp, write_atomic

Status = Literal[
    "creating", "in_progress", "collected", "foreign", "not_created", "superseded", "lost"
]
Via = Literal["create", "look-up"]


class BatchEntry(BaseModel):
    """One intent to create a batch and, once known, the batch it produced."""

    status: Status = Field(
        description="creating: the creation request may have been sent, no batch id known yet; "
        "in_progress: a batch to wait on; collected: its results are in the ledger; foreign: "
        "found by look-up but it carried none of our calls (another's batch); not_created: no "
        "batch was created, as far as the look-up could tell; superseded: its calls were "
        "answered meanwhile; lost: the API no longer knows the batch"
    )
    calls: dict[str, str] = Field(description="The ledger keys (custom_ids) it carries → item.")
    id: str | None = Field(default=None, description="The batch id, once known.")
    via: Via = Field(
        default="create",
        description="create: the id came in the creation reply (the batch is surely ours); "
        "look-up: found among the recent batches after a lost reply (ours only if its results "
        "carry our keys)",
    )
    intent: str = Field(default="", description="One id shared by the entries of one intent.")
    requests_sha256: str = Field(
        default="",
        description="sha256 of the requests' JSON: a record of what the intent carried, for "
        "audit only (a look-up cannot compare it: the API shows no batch's requests)",
    )
    requests: int = Field(default=0, description="How many requests the creation carries.")
    intended: str | None = Field(
        default=None, description="UTC time, to the second, before the first creation request."
    )
    posts: int = Field(default=1, description="Creation requests sent for this intent.")
    counted: int = Field(
        default=0, description="... of which already in the ledger's `attempts` (as failures)."
    )
    submitted: str | None = Field(default=None, description="When the batch id became known.")
    updated: str | None = Field(default=None, description="When `status` last changed.")

    def claims(self) -> bool:
        """Whether this entry says its batch belongs to its subject: created by its request, or
        found to carry its calls."""
        return self.id is not None and (self.via == "create" or self.status == "collected")


class BatchState:
    """The state file at `path`; its folder holds the other subjects' files of the same run."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> list[BatchEntry]:
        return _read(self.path)

    def save(self, entries: list[BatchEntry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"batches": [e.model_dump(exclude_none=True) for e in entries]}
        write_atomic(self.path, json.dumps(data, indent=2) + "\n")

    def put(self, entry: BatchEntry, *, replacing: BatchEntry | None = None) -> None:
        """Write `entry` in place of `replacing` (or of the entry with its intent and id), or
        add it."""
        old = replacing or entry
        entries = self.load()
        at = [i for i, e in enumerate(entries) if (e.intent, e.id) == (old.intent, old.id)]
        if at:
            entries[at[0]] = entry
        else:
            entries.append(entry)
        self.save(entries)

    def replace(self, old: BatchEntry, new: list[BatchEntry]) -> None:
        """`new` in place of `old` (e.g. the batches a look-up found for an intent)."""
        entries = self.load()
        at = next(i for i, e in enumerate(entries) if (e.intent, e.id) == (old.intent, old.id))
        self.save([*entries[:at], *new, *entries[at + 1 :]])

    def mark(self, entry: BatchEntry, status: Status) -> BatchEntry:
        marked = entry.model_copy(update={"status": status, "updated": utc_stamp()})
        self.put(marked, replacing=entry)
        return marked

    def taken(self) -> set[str]:
        """Batch ids a look-up must not adopt: every batch this file already knows, and the
        batches the other state files in its folder claim."""
        out = {e.id for e in self.load() if e.id}
        for other in sorted(self.path.parent.glob("*.json")):
            if other != self.path:
                out |= {e.id for e in _read(other) if e.claims() and e.id}
        return out


def _read(path: Path) -> list[BatchEntry]:
    if not path.exists():
        return []
    return [BatchEntry.model_validate(e) for e in json.loads(path.read_text())["batches"]]
