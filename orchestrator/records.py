"""records.sqlite: items, the call ledger, screening, batches, verdicts, flags and decisions.

The graph state holds ids and counts; everything else a run produces lives here. Each write is
its own transaction, committed before the function returns, so a crash loses at most the call
that was in flight. One connection, shared by the threads of one process under a lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.client import CallResult, CallSpec

SCHEMA = """
CREATE TABLE IF NOT EXISTS items(
  id TEXT PRIMARY KEY, cell TEXT NOT NULL, subject TEXT NOT NULL, levels TEXT NOT NULL,
  replicate INTEGER NOT NULL, task_id TEXT NOT NULL, plant_id TEXT,
  system TEXT NOT NULL, user TEXT NOT NULL, blind_user TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calls(
  key TEXT PRIMARY KEY, stage TEXT NOT NULL, item TEXT NOT NULL, role TEXT NOT NULL,
  model TEXT NOT NULL, params TEXT NOT NULL, request TEXT NOT NULL, content TEXT NOT NULL,
  stop_reason TEXT, error TEXT, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
  cost_usd REAL, latency_s REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 1,
  created TEXT NOT NULL, cache_write_tokens INTEGER NOT NULL DEFAULT 0,
  cache_read_tokens INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS calls_item ON calls(stage, item, role);
CREATE TABLE IF NOT EXISTS screen(
  item_id TEXT PRIMARY KEY, flags TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches(
  id TEXT PRIMARY KEY, evaluator TEXT NOT NULL, items TEXT NOT NULL, status TEXT NOT NULL,
  extra TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS verdicts(
  item_id TEXT NOT NULL, evaluator TEXT NOT NULL, copy INTEGER NOT NULL DEFAULT 0,
  batch_id TEXT NOT NULL, role TEXT NOT NULL DEFAULT 'primary', status TEXT NOT NULL,
  fields TEXT, reason TEXT, cites TEXT NOT NULL DEFAULT '[]',
  PRIMARY KEY(item_id, evaluator, copy));
CREATE TABLE IF NOT EXISTS comprehension(
  evaluator TEXT NOT NULL, attempt INTEGER NOT NULL, answers TEXT NOT NULL, wrong TEXT NOT NULL,
  passed INTEGER NOT NULL, created TEXT NOT NULL, PRIMARY KEY(evaluator, attempt));
CREATE TABLE IF NOT EXISTS agent_sessions(
  agent TEXT NOT NULL, session INTEGER NOT NULL, reason TEXT NOT NULL, created TEXT NOT NULL,
  PRIMARY KEY(agent, session));
CREATE TABLE IF NOT EXISTS flags(
  id INTEGER PRIMARY KEY AUTOINCREMENT, stage TEXT NOT NULL, kind TEXT NOT NULL,
  raised_by TEXT NOT NULL, items TEXT NOT NULL, text TEXT NOT NULL, created TEXT NOT NULL,
  resolution TEXT, UNIQUE(stage, kind, raised_by, text));
CREATE TABLE IF NOT EXISTS decisions(
  checkpoint TEXT PRIMARY KEY, decision TEXT NOT NULL, by TEXT NOT NULL, at TEXT NOT NULL,
  note TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS probe_results(
  id INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT, probe TEXT NOT NULL, model TEXT NOT NULL,
  params TEXT NOT NULL, text_sha256 TEXT NOT NULL, result TEXT NOT NULL, error TEXT,
  created TEXT NOT NULL, UNIQUE(item_id, probe, params, text_sha256));
CREATE TABLE IF NOT EXISTS amendments(
  n INTEGER PRIMARY KEY AUTOINCREMENT, proposed_at TEXT NOT NULL, by TEXT NOT NULL,
  note TEXT NOT NULL, old_sha256 TEXT NOT NULL, new_sha256 TEXT NOT NULL, diff TEXT NOT NULL,
  text TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', decided_by TEXT,
  decided_at TEXT, decision_note TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS stages(
  stage TEXT PRIMARY KEY, status TEXT NOT NULL, counts TEXT NOT NULL, updated TEXT NOT NULL);
"""


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Item:
    id: str
    cell: str
    subject: str
    levels: dict[str, str]
    replicate: int
    task_id: str
    plant_id: str | None
    system: str
    user: str
    blind_user: str


@dataclass(frozen=True)
class Response:
    item_id: str
    text: str
    stop_reason: str | None
    error: str | None
    output_tokens: int


@dataclass(frozen=True)
class Verdict:
    item_id: str
    evaluator: str
    batch_id: str
    status: str  # "scored" | "unscored"
    fields: dict[str, Any] | None
    reason: str | None
    copy: int = 0
    """1 for the planted duplicate an evaluator judges a second time (self-consistency)."""
    role: str = "primary"
    """primary: the verdict the analysis uses; overlap: a second evaluator's, for agreement;
    duplicate: the same evaluator's second look."""
    cites: tuple[int, ...] = ()
    """probe_results ids the verdict relied on."""


@dataclass(frozen=True)
class Assigned:
    """One entry of an evaluator's work: an item, which copy, and why it is there."""

    item_id: str
    copy: int = 0
    role: str = "primary"


@dataclass(frozen=True)
class ComprehensionRow:
    evaluator: str
    attempt: int
    answers: dict[str, str]
    wrong: list[str]
    passed: bool


@dataclass(frozen=True)
class ProbeRow:
    id: int
    item_id: str | None
    probe: str
    model: str
    result: dict[str, Any] | None
    error: str | None


@dataclass(frozen=True)
class FlagRow:
    id: int
    stage: str
    kind: str
    raised_by: str
    items: list[str]
    text: str
    resolution: str | None


@dataclass(frozen=True)
class DecisionRow:
    checkpoint: str
    decision: str
    by: str
    at: str
    note: str


@dataclass(frozen=True)
class AmendmentRow:
    """A proposed change to the pre-registered analysis, and what a human decided."""

    n: int
    proposed_at: str
    by: str
    note: str
    old_sha256: str
    new_sha256: str
    diff: str
    text: str
    """The amended protocol.yaml, as proposed."""
    status: str
    """pending | approved | rejected"""
    decided_by: str | None
    decided_at: str | None
    decision_note: str


class Records:
    """The run's records store; also the call ledger the LLM client writes through."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed process (what we guard against) without an fsync per
        # call; only a power cut could lose the last few calls, which would then be made again
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()
        self._db.executescript(SCHEMA)

    def _migrate(self) -> None:
        """Bring a records file from an earlier version up to SCHEMA (idempotent)."""
        with self._lock:
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(verdicts)")}
            if cols and "copy" not in cols:  # v1: one verdict per (item, evaluator)
                self._db.executescript(
                    "BEGIN; ALTER TABLE verdicts RENAME TO verdicts_v1;"
                    + SCHEMA
                    + "INSERT INTO verdicts(item_id, evaluator, batch_id, status, fields, reason) "
                    "SELECT item_id, evaluator, batch_id, status, fields, reason FROM verdicts_v1;"
                    "DROP TABLE verdicts_v1; COMMIT;"
                )
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(calls)")}
            for col in ("cache_write_tokens", "cache_read_tokens"):
                if cols and col not in cols:
                    add = f"ALTER TABLE calls ADD COLUMN {col} INTEGER NOT NULL DEFAULT 0"
                    self._db.execute(add)
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(batches)")}
            if cols and "extra" not in cols:
                self._db.execute("ALTER TABLE batches ADD COLUMN extra TEXT NOT NULL DEFAULT '[]'")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _all(self, sql: str, *args: Any) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # items --------------------------------------------------------------------------------
    def add_items(self, items: list[Item]) -> None:
        rows = [
            (i.id, i.cell, i.subject, json.dumps(i.levels), i.replicate, i.task_id, i.plant_id,
             i.system, i.user, i.blind_user)
            for i in items
        ]  # fmt: skip
        with self._tx() as db:
            db.executemany("INSERT OR IGNORE INTO items VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

    def items(self) -> list[Item]:
        rows = self._all("SELECT * FROM items ORDER BY id")
        return [Item(r[0], r[1], r[2], json.loads(r[3]), *r[4:]) for r in rows]

    # the ledger ---------------------------------------------------------------------------
    def lookup(self, key: str) -> CallResult | None:
        rows = self._all(
            "SELECT content, stop_reason, input_tokens, output_tokens, cost_usd, "
            "cache_write_tokens, cache_read_tokens FROM calls WHERE key=? AND error IS NULL",
            key,
        )
        if not rows:
            return None
        content, stop, tin, tout, cost, cw, cr = rows[0]
        return CallResult(key, json.loads(content), stop, tin, tout, cost, cached=True,
                          cache_write_tokens=cw, cache_read_tokens=cr)  # fmt: skip

    def store(
        self,
        result: CallResult,
        *,
        spec: CallSpec,
        model: str,
        params: dict[str, Any],
        request: dict[str, Any],
        latency_s: float,
    ) -> None:
        row = (
            result.key, spec.stage, spec.item, spec.role, model, json.dumps(params, sort_keys=True),
            json.dumps(request), json.dumps(result.content), result.stop_reason, result.error,
            result.input_tokens, result.output_tokens, result.cost_usd, latency_s, now(),
            result.cache_write_tokens, result.cache_read_tokens, result.attempts,
        )  # fmt: skip
        with self._tx() as db:
            # a failed attempt is replaced by the next one; a success is never overwritten
            db.execute(
                "INSERT INTO calls(key, stage, item, role, model, params, request, content, "
                "stop_reason, error, input_tokens, output_tokens, cost_usd, latency_s, created, "
                "cache_write_tokens, cache_read_tokens, attempts) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET "
                "content=excluded.content, stop_reason=excluded.stop_reason, "
                "error=excluded.error, input_tokens=excluded.input_tokens, "
                "output_tokens=excluded.output_tokens, cost_usd=excluded.cost_usd, "
                "latency_s=excluded.latency_s, attempts=calls.attempts+excluded.attempts, "
                "created=excluded.created, "
                "cache_write_tokens=excluded.cache_write_tokens, "
                "cache_read_tokens=excluded.cache_read_tokens "
                "WHERE calls.error IS NOT NULL",
                row,
            )

    def responses(self) -> dict[str, Response]:
        rows = self._all(
            "SELECT item, content, stop_reason, error, output_tokens FROM calls "
            "WHERE stage='collect' AND role='subject'"
        )
        out = {}
        for item, content, stop, error, tout in rows:
            text = "".join(b.get("text", "") for b in json.loads(content) if b["type"] == "text")
            out[item] = Response(item, text, stop, error, tout)
        return out

    def usage(self) -> dict[str, dict[str, float]]:
        """Tokens, cost and call counts per stage (failed attempts included: they were paid)."""
        rows = self._all(
            "SELECT stage, SUM(attempts), SUM(input_tokens), SUM(output_tokens), SUM(cost_usd), "
            "SUM(cost_usd IS NULL), SUM(error IS NOT NULL), SUM(cache_write_tokens), "
            "SUM(cache_read_tokens) FROM calls GROUP BY stage"
        )
        return {
            r[0]: {"calls": r[1], "input_tokens": r[2], "output_tokens": r[3],
                   "cost_usd": r[4] or 0.0, "unpriced": r[5], "errors": r[6],
                   "cache_write_tokens": r[7] or 0, "cache_read_tokens": r[8] or 0}
            for r in rows
        }  # fmt: skip

    # screening ----------------------------------------------------------------------------
    def set_screen(self, results: dict[str, tuple[list[str], str]]) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM screen")
            db.executemany(
                "INSERT INTO screen VALUES (?,?,?)",
                [(i, json.dumps(flags), text) for i, (flags, text) in results.items()],
            )

    def screen(self) -> dict[str, list[str]]:
        return {i: json.loads(f) for i, f in self._all("SELECT item_id, flags FROM screen")}

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
                    "VALUES (?,?,?,'planned',?)",
                    (batch_id, evaluator, json.dumps(items), json.dumps(more)),
                )

    def batches(self) -> list[tuple[str, str, list[str], str]]:
        rows = self._all("SELECT id, evaluator, items, status FROM batches ORDER BY id")
        return [(b, e, json.loads(i), s) for b, e, i, s in rows]

    def assignment(self, batch_id: str) -> list[Assigned]:
        """Everything the batch's evaluator judges: its primary items, then the extra entries."""
        rows = self._all("SELECT items, extra FROM batches WHERE id=?", batch_id)
        if not rows:
            return []
        items, extra = json.loads(rows[0][0]), json.loads(rows[0][1])
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
            [
                (v.item_id, v.evaluator, v.copy, v.batch_id, v.role, v.status,
                 json.dumps(v.fields) if v.fields is not None else None, v.reason,
                 json.dumps(list(v.cites)))
                for v in verdicts
            ],
        )  # fmt: skip

    def finish_batch(self, batch_id: str, verdicts: list[Verdict]) -> None:
        with self._tx() as db:
            self._put_verdicts(db, verdicts)
            db.execute("UPDATE batches SET status='done' WHERE id=?", (batch_id,))

    def verdicts(self, role: str | None = "primary") -> list[Verdict]:
        """Verdicts with `role` (default the primary ones, one per item); None for all."""
        sql = ("SELECT item_id, evaluator, batch_id, status, fields, reason, copy, role, cites "
               "FROM verdicts")  # fmt: skip
        order = " ORDER BY item_id, evaluator, copy"
        rows = self._all(sql + " WHERE role=?" + order, role) if role else self._all(sql + order)
        return [
            Verdict(r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] else None, r[5], r[6], r[7],
                    tuple(json.loads(r[8])))
            for r in rows
        ]  # fmt: skip

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
                "INSERT INTO comprehension VALUES (?,?,?,?,?,?)",
                (evaluator, n + 1, json.dumps(answers), json.dumps(wrong), int(passed), now()),
            )
            return n + 1

    def comprehension(self, evaluator: str | None = None) -> list[ComprehensionRow]:
        sql = "SELECT evaluator, attempt, answers, wrong, passed FROM comprehension"
        rows = (
            self._all(sql + " WHERE evaluator=? ORDER BY attempt", evaluator)
            if evaluator
            else self._all(sql + " ORDER BY evaluator, attempt")
        )
        return [ComprehensionRow(e, a, json.loads(x), json.loads(w), bool(p))
                for e, a, x, w, p in rows]  # fmt: skip

    def start_session(self, agent: str, reason: str) -> int:
        """A new conversation for `agent` (first, after compaction, after a restart): its number."""
        with self._tx() as db:
            (n,) = db.execute(
                "SELECT COALESCE(MAX(session), 0) FROM agent_sessions WHERE agent=?", (agent,)
            ).fetchone()
            db.execute("INSERT INTO agent_sessions VALUES (?,?,?,?)", (agent, n + 1, reason, now()))
            return n + 1

    def sessions(self, agent: str) -> list[tuple[int, str]]:
        rows = self._all(
            "SELECT session, reason FROM agent_sessions WHERE agent=? ORDER BY session", agent
        )
        return [(n, r) for n, r in rows]

    def probe_result_ids(self) -> set[int]:
        return {r[0] for r in self._all("SELECT id FROM probe_results WHERE error IS NULL")}

    # probe results ------------------------------------------------------------------------
    def add_probe_result(
        self,
        item_id: str | None,
        probe: str,
        model: str,
        params: dict[str, Any],
        text_sha256: str,
        result: dict[str, Any] | None,
        error: str | None = None,
    ) -> int:
        """Store one probe readout (or why there is none); return its id, citable by verdicts."""
        key = (item_id, probe, json.dumps(params, sort_keys=True), text_sha256)
        with self._tx() as db:
            # the same readout asked for twice (a re-run stage, an agent's tool call) keeps its
            # first id, so a verdict that cited it still points at a row
            found = db.execute(
                "SELECT id FROM probe_results WHERE item_id IS ? AND probe=? AND params=? "
                "AND text_sha256=? AND error IS NULL",
                key,
            ).fetchone()
            if found and error is None:
                return int(found[0])
            cur = db.execute(
                "INSERT OR REPLACE INTO probe_results(item_id, probe, model, params, text_sha256, "
                "result, error, created) VALUES (?,?,?,?,?,?,?,?)",
                (*key[:2], model, key[2], key[3], json.dumps(result), error, now()),
            )
            return int(cur.lastrowid)

    def probe_results(self, probe: str | None = None) -> list[ProbeRow]:
        sql = "SELECT id, item_id, probe, model, result, error FROM probe_results"
        rows = (
            self._all(sql + " WHERE probe=? ORDER BY id", probe)
            if probe
            else self._all(sql + " ORDER BY id")
        )
        return [ProbeRow(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    # flags and decisions ------------------------------------------------------------------
    def add_flag(self, stage: str, kind: str, raised_by: str, items: list[str], text: str) -> bool:
        """Record a flag; False if the same flag was already raised (stages re-run)."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO flags(stage, kind, raised_by, items, text, created) "
                "VALUES (?,?,?,?,?,?)",
                (stage, kind, raised_by, json.dumps(items), text, now()),
            )
            return cur.rowcount == 1

    def flags(self) -> list[FlagRow]:
        rows = self._all("SELECT id, stage, kind, raised_by, items, text, resolution FROM flags")
        return [FlagRow(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in rows]

    def resolve_flag(self, flag_id: int, resolution: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE flags SET resolution=? WHERE id=?", (resolution, flag_id))

    def record_decision(self, checkpoint: str, decision: str, by: str, note: str) -> DecisionRow:
        row = DecisionRow(checkpoint, decision, by, now(), note)
        with self._tx() as db:
            db.execute(
                "INSERT INTO decisions VALUES (?,?,?,?,?)",
                (row.checkpoint, row.decision, row.by, row.at, row.note),
            )
        return row

    def decision(self, checkpoint: str) -> DecisionRow | None:
        rows = self._all("SELECT * FROM decisions WHERE checkpoint=?", checkpoint)
        return DecisionRow(*rows[0]) if rows else None

    def decisions(self) -> list[DecisionRow]:
        return [DecisionRow(*r) for r in self._all("SELECT * FROM decisions ORDER BY at")]

    # amendments to the pre-registered analysis -------------------------------------------
    def propose_amendment(
        self, by: str, note: str, old_sha256: str, new_sha256: str, diff: str, text: str
    ) -> AmendmentRow:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO amendments(proposed_at, by, note, old_sha256, new_sha256, diff, text)"
                " VALUES (?,?,?,?,?,?,?)",
                (now(), by, note, old_sha256, new_sha256, diff, text),
            )
            n = cur.lastrowid
        return next(a for a in self.amendments() if a.n == n)

    def decide_amendment(self, n: int, status: str, by: str, note: str) -> AmendmentRow:
        with self._tx() as db:
            db.execute(
                "UPDATE amendments SET status=?, decided_by=?, decided_at=?, decision_note=? "
                "WHERE n=? AND status='pending'",
                (status, by, now(), note, n),
            )
        return next(a for a in self.amendments() if a.n == n)

    def amendments(self) -> list[AmendmentRow]:
        return [AmendmentRow(*r) for r in self._all("SELECT * FROM amendments ORDER BY n")]

    # stage progress -----------------------------------------------------------------------
    def set_stage(self, stage: str, status: str, counts: dict[str, int | float]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO stages VALUES (?,?,?,?)",
                (stage, status, json.dumps(counts), now()),
            )

    def stages(self) -> dict[str, tuple[str, dict[str, int | float]]]:
        rows = self._all("SELECT stage, status, counts FROM stages")
        return {s: (st, json.loads(c)) for s, st, c in rows}
