"""report: write report.md and the jsonl exports from records and analysis.json."""

from __future__ import annotations

from langgraph.runtime import Runtime

from orchestrator.analysis import load_analysis
from orchestrator.context import RunContext
from orchestrator.progress import finish_stage
from orchestrator.report import write_report
from orchestrator.state import RunState


def report(state: RunState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    analysis = load_analysis(ctx.run.path("artifacts", "analysis.json"))
    path = write_report(ctx.run, ctx.protocol, analysis)
    finish_stage(ctx.run, "report", {"files": 4}, f"Wrote {path.name} and artifacts/*.jsonl.")
    return {"stage": "report"}
