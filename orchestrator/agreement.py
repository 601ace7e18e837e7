"""Old names of the agreement statistics, for the two callers that still pass plain dicts
(nodes/evaluate.py writes agreement.json with json.dumps; progress.py reads it with json.loads).
The statistics and the `Agreement` model live in orchestrator/analysis/agreement.py; once those
callers use `compute_agreement`/`save_agreement`/`load_agreement`, this module goes.
"""

from __future__ import annotations

from typing import Any

from orchestrator.analysis.agreement import compute_agreement
from orchestrator.analysis.agreement import headline as _headline
from orchestrator.analysis.result import Agreement
from orchestrator.protocol.schema import Protocol
from orchestrator.records import Records


def agreement(protocol: Protocol, records: Records) -> dict[str, Any]:
    """`compute_agreement` as the plain dict agreement.json holds."""
    return compute_agreement(protocol, records).model_dump(mode="json")


def headline(data: Agreement | dict[str, Any], field: str) -> str:
    """One line for SUMMARY.md and the checkpoint: agreement on `field`."""
    model = data if isinstance(data, Agreement) else Agreement.model_validate(data)
    return _headline(model, field)
