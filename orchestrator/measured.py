"""Whether the evaluate stage measured what the run needs, raised as flags for the evaluate
checkpoint: unscored items (blocking above `evaluation.max_unscored`) and verdicts that break
the protocol's constraints (`analysis.constraints`, always blocking). A run whose judges failed
on most items, or scored what the design makes impossible, must not pass `--yes` quietly.

The flags are recounted each time evaluate closes (items pending on a judge outage are judged
later): a flag whose count no longer holds is resolved as superseded, so only the current
numbers block.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from orchestrator.analysis import in_design_order, primary_verdicts
from orchestrator.analysis.constraints import check_constraints
from orchestrator.analysis.result import ConstraintCheck
from orchestrator.protocol.schema import Protocol
from orchestrator.records import Item, Records, Verdict, VerdictStatus

UNSCORED = "unscored"
"""Some items unscored, within the protocol's threshold: shown, not blocking."""
TOO_MANY_UNSCORED = "too_many_unscored"
"""More items unscored than `evaluation.max_unscored` allows: blocks `--yes`."""
CONSTRAINT = "constraint"
"""Verdicts the design makes impossible (`analysis.constraints`): blocks `--yes`."""
KINDS = (UNSCORED, TOO_MANY_UNSCORED, CONSTRAINT)
RAISED_BY = "evaluate"


@dataclass(frozen=True)
class Finding:
    """A flag to raise at the evaluate checkpoint."""

    kind: str
    items: list[str]
    text: str


def findings(protocol: Protocol, records: Records) -> list[Finding]:
    """What the primary verdicts, as they stand, say about the measurement."""
    items = in_design_order(protocol, records.items())
    verdicts = primary_verdicts(records.verdicts())
    out = _unscored(protocol, items, verdicts)
    checks = check_constraints(protocol, items, verdicts)
    return out + [_constraint(c) for c in checks if c.violations]


def raise_flags(protocol: Protocol, records: Records) -> list[Finding]:
    """Record the current findings as flags (once each); resolve earlier ones of these kinds
    that no longer hold. Returns the findings newly recorded."""
    now = findings(protocol, records)
    texts = {f.text for f in now}
    for old in records.flags():
        stale = old.resolution is None and old.kind in KINDS and old.text not in texts
        if stale and old.stage == "evaluate" and old.raised_by == RAISED_BY:
            records.resolve_flag(old.id, "superseded: counted again after more items were judged")
    return [f for f in now if records.add_flag("evaluate", f.kind, RAISED_BY, f.items, f.text)]


def _unscored(protocol: Protocol, items: list[Item], verdicts: dict[str, Verdict]) -> list[Finding]:
    unscored = [
        verdicts[i.id]
        for i in items
        if i.id in verdicts and verdicts[i.id].status == VerdictStatus.UNSCORED
    ]
    if not unscored:
        return []
    n, u = len(items), len(unscored)
    limit = protocol.evaluation.max_unscored
    ids = [v.item_id for v in unscored]
    if u / n <= limit:
        return [Finding(UNSCORED, ids, f"{u} of {n} items unscored (see verdicts.reason)")]
    reasons = Counter(" ".join((v.reason or "no reason recorded").split())[:160] for v in unscored)
    main = "; ".join(f"{r} ({k})" for r, k in reasons.most_common(3))
    text = (
        f"{u} of {n} items ({u / n:.0%}) are unscored, above evaluation.max_unscored "
        f"({limit:.0%}): the rates would rest on {n - u} items. Main reasons: {main}. Read "
        "the reasons (verdicts.reason; artifacts/verdicts.jsonl once reported), fix what the "
        "judges failed on (rubric, verdict fields, judge model) and start a new run; approve "
        "(or --yes --accept-flags) only to report rates with this much missing."
    )
    return [Finding(TOO_MANY_UNSCORED, ids, text)]


def _constraint(c: ConstraintCheck) -> Finding:
    why = f" ({c.why})" if c.why else ""
    cells = ", ".join(f"{x.cell} {x.violations} of {x.checked}" for x in c.cells if x.violations)
    examples = [e for x in c.cells for e in x.examples][:2]
    quoted = "; ".join(
        f"{e.item_id}: “{e.evidence}”" if e.evidence else f"{e.item_id} (no evidence given)"
        for e in examples
    )
    text = (
        f"{c.outcome} = {c.value} in {c.violations} of {c.checked} scored items where the "
        f"design rules it out: {c.rule}{why}. By cell: {cells}. E.g. {quoted}. Read these "
        f"items: a judge that scores the impossible misreads the rubric, so its {c.outcome} "
        "rates are suspect; sharpen the rubric or the field's description and judge again in "
        "a new run, or approve (or --yes --accept-flags) to report them with the violations "
        "listed."
    )
    return Finding(CONSTRAINT, [i for x in c.cells for i in x.items], text)
