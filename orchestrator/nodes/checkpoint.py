"""Checkpoints: pause for a human decision after a stage, when the protocol asks for one.

The node calls `interrupt()`; the runner records the decision (records, LOG.md, SUMMARY.md, a git
commit) and resumes the graph. A decision already recorded (e.g. by `research approve`) is used
without asking again, so a checkpoint is decided once per run whatever happens in between.

After evaluate, items left *pending* (the judge API kept failing) make the node wait even where
the protocol asks for no checkpoint: the runner answers `RETRY` to send the stage back for them,
and a decision to go on past pending items can only come from a person. Open flags that block
`--yes` (flags.py: data quality, too many unscored items, broken constraints) make it wait too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from orchestrator.context import RunContext
from orchestrator.flags import blocking_flags
from orchestrator.state import RunState

RETRY: Final = "retry"
"""The runner's answer at a checkpoint that sends its stage back for the work still pending."""


def checkpoint(stage: str) -> Callable[[RunState, Runtime[RunContext]], RunState]:
    def node(state: RunState, runtime: Runtime[RunContext]) -> RunState:
        ctx = runtime.context
        # pending items, and flags that block --yes, make evaluate wait whatever the protocol says
        waits = stage == "evaluate" and bool(ctx.run.records.pending() or blocking_flags(ctx.run))
        if stage not in ctx.protocol.checkpoints and not waits:
            return {"decisions": {stage: "approve"}}
        recorded = ctx.run.records.decision(stage)
        if recorded is None:
            if interrupt({"checkpoint": stage}) == RETRY:
                return {"decisions": {stage: RETRY}}
            recorded = ctx.run.records.decision(stage)
            if recorded is None:  # resumed without a decision: a runner bug, not a user error
                raise RuntimeError(f"resumed past the {stage} checkpoint without a decision")
        return {"decisions": {stage: recorded.decision}}

    node.__name__ = f"checkpoint_{stage}"
    return node


def after(stage: str, nxt: str) -> Callable[[RunState], str]:
    """Approved: on to `nxt`; sent back (`RETRY`): the stage again; rejected: the end."""

    def route(state: RunState) -> str:
        decision = state.get("decisions", {}).get(stage)
        if decision == RETRY:
            return stage
        return nxt if decision == "approve" else END

    route.__name__ = f"after_{stage}"
    return route
