"""The records.sqlite file: its schema, the migration from earlier versions, one connection.

Each write is its own transaction, committed before the function returns, so a crash loses at
most the call that was in flight. One connection, shared by the threads of one process under a
lock. Rows come back as `sqlite3.Row`, read by column name.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS items(
  id TEXT PRIMARY KEY, cell TEXT NOT NULL, subject TEXT NOT NULL, levels TEXT NOT NULL,
  replicate INTEGER NOT NULL, task_id TEXT NOT NULL, plant_id TEXT,
  system TEXT NOT NULL, user TEXT NOT NULL, blind_user TEXT NOT NULL,
  turns TEXT NOT NULL DEFAULT '[]', blind_turns TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS calls(
  key TEXT PRIMARY KEY, stage TEXT NOT NULL, item TEXT NOT NULL, role TEXT NOT NULL,
  model TEXT NOT NULL, params TEXT NOT NULL, request TEXT NOT NULL, content TEXT NOT NULL,
  stop_reason TEXT, error TEXT, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
  cost_usd REAL, latency_s REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 1,
  created TEXT NOT NULL, cache_write_tokens INTEGER NOT NULL DEFAULT 0,
  cache_read_tokens INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS calls_item ON calls(stage, item, role);
CREATE TABLE IF NOT EXISTS started(
  attempt TEXT NOT NULL, key TEXT NOT NULL, stage TEXT NOT NULL, item TEXT NOT NULL,
  role TEXT NOT NULL, model TEXT NOT NULL, started TEXT NOT NULL, input_tokens INTEGER NOT NULL,
  max_tokens INTEGER NOT NULL, price_factor REAL NOT NULL, orphaned INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(attempt, key));
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
  created TEXT NOT NULL, source TEXT NOT NULL DEFAULT 'stage',
  UNIQUE(item_id, probe, params, text_sha256));
CREATE TABLE IF NOT EXISTS amendments(
  n INTEGER PRIMARY KEY AUTOINCREMENT, proposed_at TEXT NOT NULL, by TEXT NOT NULL,
  note TEXT NOT NULL, old_sha256 TEXT NOT NULL, new_sha256 TEXT NOT NULL, diff TEXT NOT NULL,
  text TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', decided_by TEXT,
  decided_at TEXT, decision_note TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS stages(
  stage TEXT PRIMARY KEY, status TEXT NOT NULL, counts TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS labels(
  item_id TEXT NOT NULL, field TEXT NOT NULL, value TEXT, skipped INTEGER NOT NULL DEFAULT 0,
  by TEXT NOT NULL, source TEXT NOT NULL, created TEXT NOT NULL, PRIMARY KEY(item_id, field));
"""

_VERDICTS_V1 = (
    "BEGIN; ALTER TABLE verdicts RENAME TO verdicts_v1;"
    + SCHEMA
    + "INSERT INTO verdicts(item_id, evaluator, batch_id, status, fields, reason) "
    "SELECT item_id, evaluator, batch_id, status, fields, reason FROM verdicts_v1;"
    "DROP TABLE verdicts_v1; COMMIT;"
)
"""v1 kept one verdict per (item, evaluator); v2 adds copy, role and cites."""


class Database:
    """One connection to records.sqlite, brought up to SCHEMA on open (or opened read-only, as
    it is)."""

    def __init__(self, path: Path, *, read_only: bool = False):
        self.path = Path(path)
        self._lock = threading.RLock()
        if read_only:
            # a reader beside the process that holds the run (`research view`): no lock taken, no
            # schema brought up to date, and any write fails ("attempt to write a readonly
            # database") instead of changing the records; WAL lets it read while a writer writes
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            if missing := self.outdated():
                self._db.close()
                raise UserError(
                    f"{self.path} was written by an earlier version (it lacks "
                    f"{', '.join(missing)}); `research report RUN` brings it up to date"
                )
            return
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed process (what we guard against) without an fsync per
        # call; only a power cut could lose the last few calls, which would then be made again
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()
        self._db.executescript(SCHEMA)

    def _columns(self, table: str) -> set[str]:
        return {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})")}

    def outdated(self) -> list[str]:
        """What opening for writing would add to this file (tables, `table.column`s), for a reader
        that may not add them."""
        wanted = {
            "verdicts": ("copy", "role", "cites"),
            "calls": ("cache_write_tokens", "cache_read_tokens"),
            "items": ("turns", "blind_turns"),
            "probe_results": ("source",),
            "batches": ("extra",),
        }
        tables = {r["name"] for r in self._db.execute("SELECT name FROM sqlite_master")}
        columns = [
            f"{table}.{col}"
            for table, cols in wanted.items()
            if (have := self._columns(table))
            for col in cols
            if col not in have
        ]
        absent = [
            t for t in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA) if t not in tables
        ]
        return absent + columns

    def _migrate(self) -> None:
        """Bring a records file from an earlier version up to SCHEMA (idempotent). Tables added
        since (`started`, `labels`) need nothing here: SCHEMA creates them if they do not exist."""
        with self._lock:
            cols = self._columns("verdicts")
            if cols and "copy" not in cols:
                self._db.executescript(_VERDICTS_V1)
            cols = self._columns("calls")
            for col in ("cache_write_tokens", "cache_read_tokens"):
                if cols and col not in cols:
                    add = f"ALTER TABLE calls ADD COLUMN {col} INTEGER NOT NULL DEFAULT 0"
                    self._db.execute(add)
            cols = self._columns("items")
            for col in ("turns", "blind_turns"):  # conversation templates (two-key form: [])
                if cols and col not in cols:
                    add = f"ALTER TABLE items ADD COLUMN {col} TEXT NOT NULL DEFAULT '[]'"
                    self._db.execute(add)
            cols = self._columns("probe_results")  # who asked: the probe stage or an agent
            if cols and "source" not in cols:
                add = "ALTER TABLE probe_results ADD COLUMN source TEXT NOT NULL DEFAULT 'stage'"
                self._db.execute(add)
            cols = self._columns("batches")
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
                self._db.execute("COMMIT")
            except BaseException:
                # a full disk may have ended the transaction already (then ROLLBACK would raise
                # and hide why), or left it open after a failed COMMIT (then the next BEGIN would)
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _all(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()
