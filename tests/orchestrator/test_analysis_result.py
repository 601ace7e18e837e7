"""analysis.json and agreement.json are typed results: what a completed run wrote reads back
through the models and equals what the analysis computes from the run's records."""

from __future__ import annotations

import json
import math
from pathlib import Path

from orchestrator.analysis import (
    SCHEMA_VERSION,
    Agreement,
    AnalysisResult,
    analyze_records,
    compute_agreement,
    load_agreement,
    save_analysis,
)
from orchestrator.context import as_run
from orchestrator.rundir import RunDir


def test_a_completed_pilots_analysis_json_is_what_the_records_give(
    completed_pilot: Path,
) -> None:
    text = (completed_pilot / "artifacts" / "analysis.json").read_text()
    stored = AnalysisResult.model_validate_json(text)
    assert stored.schema_version == SCHEMA_VERSION
    with RunDir(completed_pilot) as run:
        m = run.manifest
        protocol = as_run(run.loaded.protocol, offline=m.offline, local_model=m.local_model)
        folder = run.path("artifacts", "probes")
        computed = analyze_records(protocol, run.records, probe_artifacts=folder)
        agreement = compute_agreement(protocol, run.records)
    assert stored == computed
    assert stored.totals.items == len(stored.cells) * 3 and stored.cells and stored.contrasts
    assert stored.probes is not None and stored.probes.association
    # the file keeps the keys it had before it was typed, one field each
    assert set(json.loads(text)) == set(AnalysisResult.model_fields)
    assert load_agreement(completed_pilot / "artifacts" / "agreement.json") == agreement


def test_results_round_trip_through_their_json(completed_pilot: Path, tmp_path: Path) -> None:
    path = completed_pilot / "artifacts" / "analysis.json"
    result = AnalysisResult.model_validate_json(path.read_text())
    assert AnalysisResult.model_validate_json(result.model_dump_json()) == result
    assert result.model_dump_json(indent=2) + "\n" == path.read_text()
    # a readout can be infinite: it is written as json.dumps wrote it and reads back
    assert result.probes is not None
    cell = next(iter(result.probes.cells.values()))
    next(iter(cell.values())).mean = math.inf
    save_analysis(tmp_path / "analysis.json", result)
    assert "Infinity" in (tmp_path / "analysis.json").read_text()
    again = AnalysisResult.model_validate_json((tmp_path / "analysis.json").read_text())
    assert again == result
    # a file written before schema_version existed reads as version 1
    old = json.loads(path.read_text())
    del old["schema_version"]
    assert AnalysisResult.model_validate(old).schema_version == 1
    agreement = Agreement.model_validate_json(
        (completed_pilot / "artifacts" / "agreement.json").read_text()
    )
    assert Agreement.model_validate_json(agreement.model_dump_json()) == agreement
