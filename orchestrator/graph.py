"""The planner graph, stage by stage as in DESIGN.md:

design → checkpoint → collect → screen → probe → evaluate (fan-out, one evaluator per batch) →
checkpoint (back to evaluate while items are pending) → analyze → report → checkpoint.

With a remote judge, `probe` only trains the protocol's probes and the fan-out sends the
readouts (`readouts`) beside the evaluator batches: the worker reads while the judges judge, and
`evaluate_done` (so analyze and the report) waits for both. With a local judge, `probe` reads
everything before evaluation, as the two would share the worker's one model thread.
"""

from __future__ import annotations

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from orchestrator.context import RunContext
from orchestrator.nodes.analyze import analyze
from orchestrator.nodes.checkpoint import after, checkpoint
from orchestrator.nodes.collect import collect
from orchestrator.nodes.design import design
from orchestrator.nodes.evaluate import evaluate, evaluate_batch, evaluate_done, fan_out
from orchestrator.nodes.probe import probe, readouts
from orchestrator.nodes.report import report
from orchestrator.nodes.screen import screen
from orchestrator.state import RunState


def build_graph(checkpointer: BaseCheckpointSaver) -> CompiledStateGraph:
    g = StateGraph(RunState, context_schema=RunContext)
    g.add_node("design", design)
    g.add_node("checkpoint_design", checkpoint("design"))
    g.add_node("collect", collect)
    g.add_node("screen", screen)
    g.add_node("probe", probe)
    g.add_node("evaluate", evaluate)
    g.add_node("evaluate_batch", evaluate_batch)
    g.add_node("readouts", readouts)
    g.add_node("evaluate_done", evaluate_done)
    g.add_node("checkpoint_evaluate", checkpoint("evaluate"))
    g.add_node("analyze", analyze)
    g.add_node("report", report)
    g.add_node("checkpoint_report", checkpoint("report"))

    g.add_edge(START, "design")
    g.add_edge("design", "checkpoint_design")
    g.add_conditional_edges("checkpoint_design", after("design", "collect"), ["collect", END])
    g.add_edge("collect", "screen")
    g.add_edge("screen", "probe")
    g.add_edge("probe", "evaluate")
    g.add_conditional_edges("evaluate", fan_out, ["evaluate_batch", "readouts", "evaluate_done"])
    g.add_edge("evaluate_batch", "evaluate_done")
    g.add_edge("readouts", "evaluate_done")
    g.add_edge("evaluate_done", "checkpoint_evaluate")
    # pending items (the judge API kept failing) send the stage back from its checkpoint
    g.add_conditional_edges(
        "checkpoint_evaluate", after("evaluate", "analyze"), ["analyze", "evaluate", END]
    )
    g.add_edge("analyze", "report")
    g.add_edge("report", "checkpoint_report")
    g.add_edge("checkpoint_report", END)
    return g.compile(checkpointer=checkpointer)
