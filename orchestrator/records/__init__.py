"""records.sqlite: items, the call ledger, screening, batches, verdicts, flags and decisions.

`Records` is the store (`store.py`) over the call ledger (`ledger.py`) over one connection and
the schema (`db.py`); the typed rows and statuses it hands out are in `rows.py`.
"""

from orchestrator.records import rows
from orchestrator.records.ledger import CallLedger
from orchestrator.records.rows import *  # noqa: F403 (the names listed in rows.__all__)
from orchestrator.records.store import Records

# The row types are listed once, in rows.__all__ (asyncio's package layout).
__all__ = ["CallLedger", "Records", *rows.__all__]
