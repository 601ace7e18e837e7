"""The pre-registered analysis of a run and its typed result.

`analyze_records(protocol, records)` gives an `AnalysisResult` (result.py), written to
artifacts/analysis.json with `save_analysis` and read back with `load_analysis`; the evaluators'
agreement is an `Agreement` (agreement.py → artifacts/agreement.json). Modules by concern:
rates (per-cell Wilson rates, which verdict counts), contrasts (Newcombe, Fisher, corrections),
pooled (each contrast across subjects: subject fixed effects, errors clustered by task),
regression (logistic and ordinal models, joint tests of terms), missing (false alarms, bounds),
probes (readouts, AUROC), calibration and misclassification (the judges against human labels;
Rogan–Gladen rates).
"""

from orchestrator.analysis.agreement import compute_agreement, headline
from orchestrator.analysis.calibration import calibrate
from orchestrator.analysis.compute import analyze_records
from orchestrator.analysis.contrasts import adjust, arm_items
from orchestrator.analysis.misclassification import rogan_gladen, wilson
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
    "calibrate",
    "compute_agreement",
    "group_by_cell",
    "in_design_order",
    "headline",
    "load_agreement",
    "load_analysis",
    "primary_verdicts",
    "probe_metrics",
    "rate",
    "rogan_gladen",
    "save_agreement",
    "save_analysis",
    "wilson",
]
