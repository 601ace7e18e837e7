"""The run's records store: items, screening, batches, verdicts, agent sessions, probe results,
flags, decisions, amendments and stage progress, over the call ledger and the human labels.

The graph state holds ids and counts; everything else a run produces lives here.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from typing import Any, TypeVar

from agents.truesight import ProbeReadout
from memory import utc_stamp
from orchestrator.records.labels import LabelStore
from orchestrator.records.ledger import CallLedger
from orchestrator.records.rows import (
    AmendmentRow,
    AmendmentStatus,
    Assigned,
    BatchRow,
    BatchStatus,
    ComprehensionRow,
    DecisionRow,
    FlagRow,
    Item,
    ProbeRow,
    ProbeSource,
    SessionRow,
    StageRow,
    StageStatus,
    Turn,
    Verdict,
    VerdictRole,
    VerdictStatus,
)

T = TypeVar("T")

_VERDICT_COLUMNS = "item_id, evaluator, batch_id, status, fields, reason, copy, role, cites"
_AMENDMENT_COLUMNS = (
    "n, proposed_at, by, note, old_sha256, new_sha256, diff, text, status, decided_by, "
    "decided_at, decision_note"
)
_DECISION_COLUMNS = "checkpoint, decision, by, at, note"
_ITEM_COLUMNS = (
    "id, cell, subject, levels, replicate, task_id, plant_id, system, user, blind_user, turns, "
    "blind_turns"
)


def _build(cls: type[T], r: sqlite3.Row, **decoded: Any) -> T:
    """A row type from a row's named columns, with the JSON-encoded ones given decoded."""
    return cls(**{k: r[k] for k in r.keys()} | decoded)


def _item(r: sqlite3.Row) -> Item:
    return _build(
        Item,
        r,
        levels=json.loads(r["levels"]),
        turns=_turns(r["turns"]),
        blind_turns=_turns(r["blind_turns"]),
    )


def _turns(text: str) -> tuple[Turn, ...]:
    return tuple(Turn(*row) for row in json.loads(text))


def _verdict(r: sqlite3.Row) -> Verdict:
    fields = json.loads(r["fields"]) if r["fields"] else None
    return Verdict(
        item_id=r["item_id"],
        evaluator=r["evaluator"],
        batch_id=r["batch_id"],
        status=r["status"],
        fields=fields,
        reason=r["reason"],
        copy=r["copy"],
        role=r["role"],
        cites=tuple(json.loads(r["cites"])),
    )


def _verdict_row(v: Verdict) -> tuple:
    fields = json.dumps(v.fields) if v.fields is not None else None
    cites = json.dumps(list(v.cites))
    return (v.item_id, v.evaluator, v.copy, v.batch_id, v.role, v.status, fields, v.reason, cites)


def _amendment(r: sqlite3.Row) -> AmendmentRow:
    return _build(AmendmentRow, r, status=AmendmentStatus(r["status"]))


class Records(CallLedger, LabelStore):
    """The run's records store; also the call ledger the LLM client writes through, and where
    `research label` keeps a researcher's labels."""

    # items --------------------------------------------------------------------------------
    def add_items(self, items: list[Item]) -> None:
        rows = [
            asdict(i)
            | {
                "levels": json.dumps(i.levels),
                "turns": json.dumps([list(t) for t in i.turns]),
                "blind_turns": json.dumps([list(t) for t in i.blind_turns]),
            }
            for i in items
        ]
        with self._tx() as db:
            db.executemany(
                f"INSERT OR IGNORE INTO items({_ITEM_COLUMNS}) VALUES (:id, :cell, :subject, "
                ":levels, :replicate, :task_id, :plant_id, :system, :user, :blind_user, :turns, "
                ":blind_turns)",
                rows,
            )

    def items(self) -> list[Item]:
        return [_item(r) for r in self._all(f"SELECT {_ITEM_COLUMNS} FROM items ORDER BY id")]

    # screening ----------------------------------------------------------------------------
    def set_screen(self, results: dict[str, tuple[list[str], str]]) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM screen")
            db.executemany(
                "INSERT INTO screen(item_id, flags, text) VALUES (?,?,?)",
                [(i, json.dumps(flags), text) for i, (flags, text) in results.items()],
            )

    def screen(self) -> dict[str, list[str]]:
        rows = self._all("SELECT item_id, flags FROM screen")
        return {r["item_id"]: json.loads(r["flags"]) for r in rows}

    # evaluation ---------------------------------------------------------------------------
    def set_batches(
        self,
        batches: list[tuple[str, str, list[str]]],
        extra: dict[str, list[Assigned]] | None = None,
    ) -> None:
        """Plan batches: (id, evaluator, primary item ids); `extra` adds overlap and duplicate
        entries per batch id."""
        extra = extra or {}
        with self._tx() as db:
            for batch_id, evaluator, items in batches:
                more = [vars(a) for a in extra.get(batch_id, [])]
                db.execute(
                    "INSERT OR IGNORE INTO batches(id, evaluator, items, status, extra) "
                    "VALUES (?,?,?,?,?)",
                    (batch_id, evaluator, json.dumps(items), BatchStatus.PLANNED, json.dumps(more)),
                )

    def batches(self) -> list[BatchRow]:
        rows = self._all("SELECT id, evaluator, items, status FROM batches ORDER BY id")
        return [
            BatchRow(r["id"], r["evaluator"], json.loads(r["items"]), BatchStatus(r["status"]))
            for r in rows
        ]

    def batch(self, batch_id: str) -> BatchRow:
        return next(b for b in self.batches() if b.id == batch_id)

    def assignment(self, batch_id: str) -> list[Assigned]:
        """Everything the batch's evaluator judges: its primary items, then the extra entries."""
        rows = self._all("SELECT items, extra FROM batches WHERE id=?", batch_id)
        if not rows:
            return []
        items, extra = json.loads(rows[0]["items"]), json.loads(rows[0]["extra"])
        return [Assigned(i) for i in items] + [Assigned(**e) for e in extra]

    def add_verdicts(self, verdicts: list[Verdict]) -> None:
        """Store verdicts as they come in (a killed evaluator keeps what it submitted)."""
        with self._tx() as db:
            self._put_verdicts(db, verdicts)

    @staticmethod
    def _put_verdicts(db: sqlite3.Connection, verdicts: list[Verdict]) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO verdicts(item_id, evaluator, copy, batch_id, role, status, "
            "fields, reason, cites) VALUES (?,?,?,?,?,?,?,?,?)",
            [_verdict_row(v) for v in verdicts],
        )

    def finish_batch(
        self, batch_id: str, verdicts: list[Verdict], status: BatchStatus = BatchStatus.DONE
    ) -> None:
        with self._tx() as db:
            self._put_verdicts(db, verdicts)
            db.execute("UPDATE batches SET status=? WHERE id=?", (status, batch_id))

    def pending(self) -> list[Verdict]:
        """Items waiting for a judge (every role): the judge API kept failing on them."""
        sql = f"SELECT {_VERDICT_COLUMNS} FROM verdicts WHERE status=? ORDER BY item_id, copy"
        return [_verdict(r) for r in self._all(sql, VerdictStatus.PENDING)]

    def clear_pending(self, batch_id: str) -> None:
        """Forget the batch's pending verdicts: its items are being judged again."""
        with self._tx() as db:
            db.execute(
                "DELETE FROM verdicts WHERE batch_id=? AND status=?",
                (batch_id, VerdictStatus.PENDING),
            )

    def verdicts(self, role: VerdictRole | None = VerdictRole.PRIMARY) -> list[Verdict]:
        """Verdicts with `role` (default the primary ones, one per item); None for all."""
        sql = f"SELECT {_VERDICT_COLUMNS} FROM verdicts"
        order = " ORDER BY item_id, evaluator, copy"
        rows = self._all(sql + " WHERE role=?" + order, role) if role else self._all(sql + order)
        return [_verdict(r) for r in rows]

    # evaluator agents ---------------------------------------------------------------------
    def add_comprehension(
        self, evaluator: str, answers: dict[str, str], wrong: list[str], passed: bool
    ) -> int:
        """Store one comprehension-check attempt; returns its number (1, 2, ...)."""
        with self._tx() as db:
            (n,) = db.execute(
                "SELECT COUNT(*) FROM comprehension WHERE evaluator=?", (evaluator,)
            ).fetchone()
            db.execute(
                "INSERT INTO comprehension(evaluator, attempt, answers, wrong, passed, created) "
                "VALUES (?,?,?,?,?,?)",
                (
                    evaluator,
                    n + 1,
                    json.dumps(answers),
                    json.dumps(wrong),
                    int(passed),
                    utc_stamp(),
                ),
            )
            return n + 1

    def comprehension(self, evaluator: str | None = None) -> list[ComprehensionRow]:
        sql = "SELECT evaluator, attempt, answers, wrong, passed FROM comprehension"
        rows = (
            self._all(sql + " WHERE evaluator=? ORDER BY attempt", evaluator)
            if evaluator
            else self._all(sql + " ORDER BY evaluator, attempt")
        )
        return [
            ComprehensionRow(
                evaluator=r["evaluator"],
                attempt=r["attempt"],
                answers=json.loads(r["answers"]),
                wrong=json.loads(r["wrong"]),
                passed=bool(r["passed"]),
            )
            for r in rows
        ]

    def start_session(self, agent: str, reason: str) -> int:
        """A new conversation for `agent` (first, after compaction, after a restart): its number."""
        with self._tx() as db:
            (n,) = db.execute(
                "SELECT COALESCE(MAX(session), 0) FROM agent_sessions WHERE agent=?", (agent,)
            ).fetchone()
            db.execute(
                "INSERT INTO agent_sessions(agent, session, reason, created) VALUES (?,?,?,?)",
                (agent, n + 1, reason, utc_stamp()),
            )
            return n + 1

    def sessions(self, agent: str) -> list[SessionRow]:
        rows = self._all(
            "SELECT session, reason FROM agent_sessions WHERE agent=? ORDER BY session", agent
        )
        return [SessionRow(r["session"], r["reason"]) for r in rows]

    # probe results ------------------------------------------------------------------------
    def probe_result_ids(self) -> set[int]:
        return {r["id"] for r in self._all("SELECT id FROM probe_results WHERE error IS NULL")}

    def add_probe_result(self, readout: ProbeReadout) -> int:
        """Store one probe readout (or why there is none); return its id, citable by verdicts."""
        params = json.dumps(readout.params, sort_keys=True)
        key = (readout.item_id, readout.probe, params, readout.text_sha256)
        with self._tx() as db:
            # the same readout asked for twice (a re-run stage, an agent's tool call) keeps its
            # first id, so a verdict that cited it still points at a row
            found = db.execute(
                "SELECT id FROM probe_results WHERE item_id IS ? AND probe=? AND params=? "
                "AND text_sha256=? AND error IS NULL",
                key,
            ).fetchone()
            if found and readout.error is None:
                return int(found["id"])
            row = (
                readout.item_id,
                readout.probe,
                readout.model,
                params,
                readout.text_sha256,
                json.dumps(readout.result),
                readout.error,
                utc_stamp(),
                readout.source,
            )
            cur = db.execute(
                "INSERT OR REPLACE INTO probe_results(item_id, probe, model, params, text_sha256, "
                "result, error, created, source) VALUES (?,?,?,?,?,?,?,?,?)",
                row,
            )
            return int(cur.lastrowid)

    def probe_results(
        self, probe: str | None = None, source: ProbeSource | None = None
    ) -> list[ProbeRow]:
        """Readouts (of `probe`, from `source`: the probe stage or an agent's tool), oldest
        first."""
        sql = "SELECT id, item_id, probe, model, result, error, source FROM probe_results"
        where = [("probe=?", probe), ("source=?", source)]
        given = [(cond, value) for cond, value in where if value is not None]
        if given:
            sql += " WHERE " + " AND ".join(cond for cond, _ in given)
        rows = self._all(sql + " ORDER BY id", *(value for _, value in given))
        return [_build(ProbeRow, r, result=json.loads(r["result"])) for r in rows]

    # flags and decisions ------------------------------------------------------------------
    def add_flag(self, stage: str, kind: str, raised_by: str, items: list[str], text: str) -> bool:
        """Record a flag; False if the same flag was already raised (stages re-run)."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO flags(stage, kind, raised_by, items, text, created) "
                "VALUES (?,?,?,?,?,?)",
                (stage, kind, raised_by, json.dumps(items), text, utc_stamp()),
            )
            return cur.rowcount == 1

    def flags(self) -> list[FlagRow]:
        rows = self._all("SELECT id, stage, kind, raised_by, items, text, resolution FROM flags")
        return [_build(FlagRow, r, items=json.loads(r["items"])) for r in rows]

    def resolve_flag(self, flag_id: int, resolution: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE flags SET resolution=? WHERE id=?", (resolution, flag_id))

    def record_decision(self, checkpoint: str, decision: str, by: str, note: str) -> DecisionRow:
        row = DecisionRow(checkpoint, decision, by, utc_stamp(), note)
        with self._tx() as db:
            db.execute(
                "INSERT INTO decisions(checkpoint, decision, by, at, note) VALUES (?,?,?,?,?)",
                (row.checkpoint, row.decision, row.by, row.at, row.note),
            )
        return row

    def decision(self, checkpoint: str) -> DecisionRow | None:
        rows = self._all(
            f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE checkpoint=?", checkpoint
        )
        return _build(DecisionRow, rows[0]) if rows else None

    def decisions(self) -> list[DecisionRow]:
        rows = self._all(f"SELECT {_DECISION_COLUMNS} FROM decisions ORDER BY at")
        return [_build(DecisionRow, r) for r in rows]

    # amendments to the pre-registered analysis -------------------------------------------
    def propose_amendment(
        self, by: str, note: str, old_sha256: str, new_sha256: str, diff: str, text: str
    ) -> AmendmentRow:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO amendments(proposed_at, by, note, old_sha256, new_sha256, diff, text)"
                " VALUES (?,?,?,?,?,?,?)",
                (utc_stamp(), by, note, old_sha256, new_sha256, diff, text),
            )
            n = cur.lastrowid
        return next(a for a in self.amendments() if a.n == n)

    def decide_amendment(self, n: int, status: AmendmentStatus, by: str, note: str) -> AmendmentRow:
        with self._tx() as db:
            db.execute(
                "UPDATE amendments SET status=?, decided_by=?, decided_at=?, decision_note=? "
                "WHERE n=? AND status=?",
                (AmendmentStatus(status), by, utc_stamp(), note, n, AmendmentStatus.PENDING),
            )
        return next(a for a in self.amendments() if a.n == n)

    def amendments(self) -> list[AmendmentRow]:
        rows = self._all(f"SELECT {_AMENDMENT_COLUMNS} FROM amendments ORDER BY n")
        return [_amendment(r) for r in rows]

    # stage progress -----------------------------------------------------------------------
    def set_stage(self, stage: str, status: StageStatus, counts: dict[str, int | float]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO stages(stage, status, counts, updated) VALUES (?,?,?,?)",
                (stage, StageStatus(status), json.dumps(counts), utc_stamp()),
            )

    def stages(self) -> dict[str, StageRow]:
        rows = self._all("SELECT stage, status, counts FROM stages")
        return {
            r["stage"]: StageRow(StageStatus(r["status"]), json.loads(r["counts"])) for r in rows
        }
