"""Probe results cached in SQLite, keyed by model, probe, parameters and input.

The key is sha256 over the model's name, dtype and a cheap fingerprint of its weights, the probe's
name and version, the canonical JSON of the validated parameters, and sha256 of (context, text).
The database opens on first use, so a worker that never runs a probe creates no file. WAL mode
lets several workers on one machine share the file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

import torch

from truesight.model import LoadedModel


def weights_fingerprint(loaded: LoadedModel) -> str:
    """sha256 over every parameter's name, shape and first 16 values: differs for fine-tunes."""
    h = hashlib.sha256()
    with torch.inference_mode():
        for name, p in loaded.model.named_parameters():
            h.update(f"{name}{tuple(p.shape)}".encode())
            h.update(p.detach().flatten()[:16].float().cpu().numpy().tobytes())
    return h.hexdigest()


def model_identity(loaded: LoadedModel) -> str:
    dtype = str(loaded.dtype).removeprefix("torch.")
    return f"{loaded.name}|{dtype}|{weights_fingerprint(loaded)}"


def result_key(model: str, probe: str, version: int, params: dict, text: str, context: str) -> str:
    text_hash = hashlib.sha256(json.dumps([context, text]).encode()).hexdigest()
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    material = json.dumps([model, probe, version, canonical, text_hash])
    return hashlib.sha256(material.encode()).hexdigest()


class ResultCache:
    """Result JSON by key; thread-safe, opened lazily."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS results "
                "(key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
            )
            self._conn = conn
        return self._conn

    def get_many(self, keys: list[str]) -> dict[str, str]:
        with self._lock:
            db, found = self._db(), {}
            for start in range(0, len(keys), 500):  # SQLite caps bound parameters
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT key, value FROM results WHERE key IN ({marks})"
                found.update(db.execute(sql, chunk).fetchall())
            return found

    def put_many(self, items: dict[str, str]) -> None:
        now = time.time()
        with self._lock:
            db = self._db()
            with db:
                db.executemany(
                    "INSERT OR REPLACE INTO results (key, value, created) VALUES (?, ?, ?)",
                    [(k, v, now) for k, v in items.items()],
                )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
