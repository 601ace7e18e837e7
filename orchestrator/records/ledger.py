"""The call ledger: every external call, keyed so a recorded answer is never paid for twice.

`LLMClient` writes through `lookup` and `store`; the subjects' responses and the usage figures are
read back from the same table.
"""

from __future__ import annotations

import json

from agents.client import CallResult, LedgerEntry
from memory import utc_stamp
from orchestrator.records.db import Database
from orchestrator.records.rows import Response

_STORE = (
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
    "WHERE calls.error IS NOT NULL"
)
"""A failed attempt is replaced by the next one; a success is never overwritten. `attempts` adds
up the HTTP requests of every try, the SDK's own retries included: each was sent and may be paid.
"""

_USAGE = (
    "SELECT stage, SUM(attempts) AS calls, SUM(input_tokens) AS input_tokens, "
    "SUM(output_tokens) AS output_tokens, SUM(cost_usd) AS cost_usd, "
    "SUM(cost_usd IS NULL) AS unpriced, SUM(error IS NOT NULL) AS errors, "
    "SUM(cache_write_tokens) AS cache_write_tokens, SUM(cache_read_tokens) AS cache_read_tokens "
    "FROM calls GROUP BY stage"
)


class CallLedger(Database):
    """The calls table of records.sqlite."""

    def lookup(self, key: str) -> CallResult | None:
        rows = self._all(
            "SELECT content, stop_reason, input_tokens, output_tokens, cost_usd, "
            "cache_write_tokens, cache_read_tokens FROM calls WHERE key=? AND error IS NULL",
            key,
        )
        if not rows:
            return None
        r = rows[0]
        return CallResult(
            key,
            json.loads(r["content"]),
            r["stop_reason"],
            r["input_tokens"],
            r["output_tokens"],
            r["cost_usd"],
            cached=True,
            cache_write_tokens=r["cache_write_tokens"],
            cache_read_tokens=r["cache_read_tokens"],
        )

    def store(self, entry: LedgerEntry) -> None:
        result, spec = entry.result, entry.spec
        row = (
            result.key,
            spec.stage,
            spec.item,
            spec.role,
            entry.model,
            json.dumps(entry.params, sort_keys=True),
            json.dumps(entry.request),
            json.dumps(result.content),
            result.stop_reason,
            result.error,
            result.input_tokens,
            result.output_tokens,
            result.cost_usd,
            entry.latency_s,
            utc_stamp(),
            result.cache_write_tokens,
            result.cache_read_tokens,
            result.attempts,
        )
        with self._tx() as db:
            db.execute(_STORE, row)

    def made_calls(self, stage: str, item: str, role: str) -> bool:
        """Whether any call (answered or failed) was made for (stage, item, role): work on it
        began in an earlier process."""
        rows = self._all(
            "SELECT 1 FROM calls WHERE stage=? AND item=? AND role=? LIMIT 1", stage, item, role
        )
        return bool(rows)

    def responses(self) -> dict[str, Response]:
        rows = self._all(
            "SELECT item, content, stop_reason, error, output_tokens FROM calls "
            "WHERE stage='collect' AND role='subject'"
        )
        out = {}
        for r in rows:
            blocks = json.loads(r["content"])
            text = "".join(b.get("text", "") for b in blocks if b["type"] == "text")
            out[r["item"]] = Response(
                r["item"], text, r["stop_reason"], r["error"], r["output_tokens"]
            )
        return out

    def usage(self) -> dict[str, dict[str, float]]:
        """Tokens, cost and call counts per stage (failed attempts included: they were paid)."""
        out = {}
        for r in self._all(_USAGE):
            usage = {k: r[k] for k in r.keys() if k != "stage"}
            usage["cost_usd"] = usage["cost_usd"] or 0.0
            usage["cache_write_tokens"] = usage["cache_write_tokens"] or 0
            usage["cache_read_tokens"] = usage["cache_read_tokens"] or 0
            out[r["stage"]] = usage
        return out
