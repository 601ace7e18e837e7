"""The pre-registered analysis of a run and its typed result.

`analyze_records(protocol, records)` gives an `AnalysisResult` (result.py), written to
artifacts/analysis.json with `save_analysis` and read back with `load_analysis`; the evaluators'
agreement is an `Agreement` (agreement.py → artifacts/agreement.json). Modules by concern:
rates (per-cell Wilson rates, which verdict counts), contrasts (Newcombe, Fisher, corrections),
regression (logistic models), missing (false alarms, bounds), probes (readouts, AUROC).
"""

from orchestrator.analysis.agreement import compute_agreement, headline
from orchestrator.analysis.compute import analyze_records
from orchestrator.analysis.contrasts import adjust, arm_items
from orchestrator.analysis.missing import bounds
from orchestrator.analysis.probes import auroc, probe_metrics
from orchestrator.analysis.rates import group_by_cell, in_design_order, primary_verdicts, rate
from orchestrator.analysis.result import (
    SCHEMA_VERSION,
    Agreement,
    AnalysisResult,
    load_agreement,
    load_analysis,
    save_agreement,
    save_analysis,
)

__all__ = [
    "SCHEMA_VERSION",
    "Agreement",
    "AnalysisResult",
    "adjust",
    "analyze_records",
    "arm_items",
    "auroc",
    "bounds",
    "compute_agreement",
    "group_by_cell",
    "in_design_order",
    "headline",
    "load_agreement",
    "load_analysis",
    "primary_verdicts",
    "probe_metrics",
    "rate",
    "save_agreement",
    "save_analysis",
]
