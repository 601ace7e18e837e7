"""Checkpoints: pause for a human decision after a stage, when the protocol asks for one.

The node calls `interrupt()`; the runner records the decision (records, LOG.md, SUMMARY.md, a git
commit) and resumes the graph. A decision already recorded (e.g. by `research approve`) is used
without asking again, so a checkpoint is decided once per run whatever happens in between.
"""

from __future__ import annotations

from collections.abc import Callable

from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from orchestrator.context import RunContext
from orchestrator.state import RunState


def checkpoint(stage: str) -> Callable[[RunState, Runtime[RunContext]], RunState]:
    def node(state: RunState, runtime: Runtime[RunContext]) -> RunState:
        ctx = runtime.context
        if stage not in ctx.protocol.checkpoints:
            return {"decisions": {stage: "approve"}}
        recorded = ctx.run.records.decision(stage)
        if recorded is None:
            interrupt({"checkpoint": stage})
            recorded = ctx.run.records.decision(stage)
            if recorded is None:  # resumed without a decision: a runner bug, not a user error
                raise RuntimeError(f"resumed past the {stage} checkpoint without a decision")
        return {"decisions": {stage: recorded.decision}}

    node.__name__ = f"checkpoint_{stage}"
    return node


def after(stage: str, nxt: str) -> Callable[[RunState], str]:
    def route(state: RunState) -> str:
        return nxt if state.get("decisions", {}).get(stage) == "approve" else END

    route.__name__ = f"after_{stage}"
    return route
