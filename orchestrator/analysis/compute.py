"""`analyze_records`: the whole pre-registered analysis of a run's records → `AnalysisResult`.

Intervals, the corrections and the regressions come from statsmodels; the exact tests from
scipy. Each part lives in its own module (rates, contrasts, regression, missing, probes,
decisions, calibration).
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.analysis.calibration import calibrate
from orchestrator.analysis.constraints import check_constraints
from orchestrator.analysis.contrasts import contrast, correct
from orchestrator.analysis.decisions import Inputs, decide_hypotheses
from orchestrator.analysis.missing import false_alarms, missing
from orchestrator.analysis.pooled import correct_pooled, pool_contrasts
from orchestrator.analysis.probes import associate, summarise_probes
from orchestrator.analysis.rates import (
    cell_rates,
    group_by_cell,
    in_design_order,
    is_scored,
    primary_verdicts,
)
from orchestrator.analysis.regression import fit_model
from orchestrator.analysis.result import SCHEMA_VERSION, AnalysisResult, Totals
from orchestrator.analysis.validity import read_validity
from orchestrator.protocol.schema import Protocol
from orchestrator.records import Records


def analyze_records(
    protocol: Protocol, records: Records, *, probe_artifacts: Path | None = None
) -> AnalysisResult:
    """Every statistic the protocol pre-registers, from the records as they stand, every list
    in design order; with `probe_artifacts` (the run's artifacts/probes), the trained probes'
    validity too."""
    items = in_design_order(protocol, records.items())
    verdicts = primary_verdicts(records.verdicts())
    by_cell = group_by_cell(items)
    primary = protocol.analysis.primary
    contrasts = [
        contrast(c, subject.id, outcome, items, verdicts, named=outcome in c.named_for(primary))
        for c in protocol.analysis.contrasts
        for subject in protocol.subjects
        for outcome in protocol.outcomes
    ]
    correction = correct(contrasts, protocol)
    pooled = pool_contrasts(protocol, items, verdicts)
    pooled_correction = correct_pooled(pooled, protocol)
    probes = summarise_probes(records, items)
    probes.association = associate(records, items, verdicts, primary)
    validity = read_validity(protocol, probe_artifacts) if probe_artifacts else None
    if validity is not None:
        probes.validity, probes.readout_transfer = validity
    scored = sum(1 for i in items if is_scored(verdicts.get(i.id)))
    models = [fit_model(protocol, m, items, verdicts) for m in protocol.analysis.models]
    decisions = decide_hypotheses(Inputs(protocol, items, verdicts, contrasts, models, pooled))
    cells = cell_rates(protocol, by_cell, verdicts, records.screen())
    return AnalysisResult(
        schema_version=SCHEMA_VERSION,
        probes=probes,
        primary=primary,
        outcomes=protocol.outcomes,
        cells=cells,
        contrasts=contrasts,
        correction=correction,
        pooled=pooled,
        pooled_correction=pooled_correction,
        models=models,
        false_alarms=false_alarms(primary, by_cell, verdicts),
        missing=missing(protocol.outcomes, by_cell, verdicts),
        constraints=check_constraints(protocol, items, verdicts),
        totals=Totals(items=len(items), scored=scored, unscored=len(items) - scored),
        decisions=decisions,
        calibration=calibrate(protocol, items, verdicts, records.labels(), cells),
    )
