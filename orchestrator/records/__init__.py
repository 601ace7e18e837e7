"""records.sqlite: items, the call ledger, screening, batches, verdicts, flags and decisions.

`Records` is the store (`store.py`) over the call ledger (`ledger.py`) over one connection and
the schema (`db.py`); the typed rows and statuses it hands out are in `rows.py`.
"""

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
    Response,
    SessionReason,
    SessionRow,
    StageRow,
    StageStatus,
    Verdict,
    VerdictRole,
    VerdictStatus,
    now,
)
from orchestrator.records.store import Records

__all__ = [
    "AmendmentRow",
    "AmendmentStatus",
    "Assigned",
    "BatchRow",
    "BatchStatus",
    "CallLedger",
    "ComprehensionRow",
    "DecisionRow",
    "FlagRow",
    "Item",
    "ProbeRow",
    "Records",
    "Response",
    "SessionReason",
    "SessionRow",
    "StageRow",
    "StageStatus",
    "Verdict",
    "VerdictRole",
    "VerdictStatus",
    "now",
]
