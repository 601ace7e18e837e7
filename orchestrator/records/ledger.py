"""The call ledger: every external call, keyed so a recorded answer is never paid for twice.

`LLMClient` writes through `lookup`, `begin` and `store`; the subjects' responses and the usage
figures are read back from the same table.

A call is in the `started` table from just before it is sent until its result is stored (the
same transaction clears it). Only one process holds a run (the run directory's lock), so rows
found there when a process opens the run belong to processes that died with those calls in flight:
`orphan_started` marks them then, and they count as possibly paid from that moment on. The rows of
the process that holds the run are its calls in flight, not possibly paid. An orphaned row stays
for good (its call may have been paid, whatever happens later) unless its own attempt is stored
after all: a message batch in flight at a kill is collected on resume under the same attempt.
"""

from __future__ import annotations

import json
from collections import defaultdict

from agents.client import CallResult, LedgerEntry, Started
from agents.pricing import price_usd
from memory import utc_stamp
from orchestrator.records.db import Database
from orchestrator.records.rows import PossiblyPaid, Response, reply_text

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


_BEGIN = (
    "INSERT OR REPLACE INTO started(attempt, key, stage, item, role, model, started, "
    "input_tokens, max_tokens, price_factor) VALUES (?,?,?,?,?,?,?,?,?,?)"
)

_ORPHANED = (
    "SELECT s.stage, s.model, s.input_tokens, s.max_tokens, s.price_factor, "
    "(SELECT AVG(c.output_tokens) FROM calls c "
    " WHERE c.stage=s.stage AND c.model=s.model AND c.error IS NULL) AS mean_output "
    "FROM started s WHERE s.orphaned=1 ORDER BY s.started"
)
"""Each orphaned call with the mean output of the answered calls of its stage and model."""


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

    def begin(self, attempt: str, calls: list[Started]) -> None:
        """Record `calls` as started under `attempt`, before they are sent."""
        now = utc_stamp()
        rows = [
            (attempt, c.key, c.spec.stage, c.spec.item, c.spec.role, c.model, now)
            + (c.input_tokens, c.max_tokens, c.price_factor)
            for c in calls
        ]
        with self._tx() as db:
            db.executemany(_BEGIN, rows)

    def unsent(self, attempt: str) -> None:
        """Clear the calls started under `attempt`: the endpoint processed none of them."""
        with self._tx() as db:
            db.execute("DELETE FROM started WHERE attempt=?", (attempt,))

    def orphan_started(self) -> int:
        """Mark every call still started as orphaned: possibly paid, never recorded. Only the
        process that has just taken the run's lock may call this (it has started nothing yet,
        so every row belongs to a process that died). Returns how many rows it marked."""
        with self._tx() as db:
            return db.execute("UPDATE started SET orphaned=1 WHERE orphaned=0").rowcount

    def possibly_paid(self) -> dict[str, PossiblyPaid]:
        """The orphaned calls per stage, with their estimated tokens and cost: the input as
        estimated when the call started; the output as the mean of the answered calls of the
        same stage and model, else the request's max_tokens; priced at the call's price factor
        (0 for a local model)."""
        by_stage: dict[str, list[tuple[int, int, float | None]]] = defaultdict(list)
        for r in self._all(_ORPHANED):
            mean = r["mean_output"]
            output = round(mean) if mean is not None else r["max_tokens"]
            price = price_usd(r["model"], r["input_tokens"], output)
            if r["price_factor"] == 0:
                price = 0.0
            elif price is not None:
                price *= r["price_factor"]
            by_stage[r["stage"]].append((r["input_tokens"], output, price))
        return {
            stage: PossiblyPaid(
                stage=stage,
                calls=len(calls),
                input_tokens=sum(c[0] for c in calls),
                output_tokens=sum(c[1] for c in calls),
                cost_usd=sum(c[2] for c in calls if c[2] is not None),
                unpriced=sum(1 for c in calls if c[2] is None),
            )
            for stage, calls in by_stage.items()
        }

    def store(self, entry: LedgerEntry, attempt: str | None = None) -> None:
        """Record a call's result (a failure too) and, in the same transaction, clear its
        record as started under `attempt`."""
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
            if attempt is not None:
                clear = "DELETE FROM started WHERE attempt=? AND key=?"
                db.execute(clear, (attempt, result.key))

    def made_calls(self, stage: str, item: str, role: str) -> bool:
        """Whether any call (answered or failed) was made for (stage, item, role): work on it
        began in an earlier process."""
        rows = self._all(
            "SELECT 1 FROM calls WHERE stage=? AND item=? AND role=? LIMIT 1", stage, item, role
        )
        return bool(rows)

    def responses(self, role: str = "subject") -> dict[str, Response]:
        """Each item's subject reply: the judged one, or (`role="subject:turn-<k>"`) the k-th
        turn the subject generated before it."""
        rows = self._all(
            "SELECT item, content, stop_reason, error, output_tokens FROM calls "
            "WHERE stage='collect' AND role=?",
            role,
        )
        out = {}
        for r in rows:
            blocks = json.loads(r["content"])
            text = reply_text(blocks)
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
