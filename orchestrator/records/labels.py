"""The labels table of records.sqlite: a researcher's own verdicts (`research label`), kept
apart from the evaluators' so the analysis can set one against the other."""

from __future__ import annotations

import json

from memory import utc_stamp
from orchestrator.records.db import Database
from orchestrator.records.rows import Label

_COLUMNS = "item_id, field, value, skipped, by, source, created"


class LabelStore(Database):
    """Human labels, one row per (item, field), each written in its own transaction so an
    interrupted labelling session keeps every answer given before it stopped."""

    def add_labels(self, labels: list[Label]) -> None:
        rows = [
            (
                x.item_id,
                x.field,
                None if x.skipped else json.dumps(x.value),
                int(x.skipped),
                x.by,
                x.source,
                x.created or utc_stamp(),
            )
            for x in labels
        ]
        with self._tx() as db:
            db.executemany(
                f"INSERT OR REPLACE INTO labels({_COLUMNS}) VALUES (?,?,?,?,?,?,?)", rows
            )

    def labels(self) -> list[Label]:
        rows = self._all(f"SELECT {_COLUMNS} FROM labels ORDER BY item_id, field")
        return [
            Label(
                item_id=r["item_id"],
                field=r["field"],
                value=None if r["value"] is None else json.loads(r["value"]),
                by=r["by"],
                source=r["source"],
                skipped=bool(r["skipped"]),
                created=r["created"],
            )
            for r in rows
        ]
