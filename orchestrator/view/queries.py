"""What the viewer reads of a run, read-only: the manifest, the frozen protocol, records.sqlite
(opened `mode=ro`, never locked, so a run in progress keeps writing) and artifacts/analysis.json.

Rates and intervals come from the `AnalysisResult` as written, never recomputed; which verdict
counts for an item is `primary_verdicts`, the analysis' own rule. Before the analysis exists the
pages show the records as they stand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.analysis import AnalysisResult, load_analysis, primary_verdicts
from orchestrator.errors import ProtocolError, UserError
from orchestrator.protocol import load_protocol
from orchestrator.protocol.schema import Protocol
from orchestrator.records import FlagRow, Item, Records, StageRow, Verdict, VerdictStatus
from orchestrator.report_banner import RunFacts
from orchestrator.rundir import RUN_ID, Manifest, read_manifest
from orchestrator.state import STAGES


@dataclass(frozen=True)
class RunEntry:
    """One run in the list: its id, its manifest, whether its analysis is written."""

    id: str
    manifest: Manifest
    analysed: bool


def list_runs(root: Path) -> list[RunEntry]:
    """Every run directory under `root` with a readable manifest, newest first."""
    if not root.is_dir():
        return []
    out = []
    for path in root.iterdir():
        if not path.is_dir() or path.name.startswith(".") or not RUN_ID.match(path.name):
            continue
        m = read_manifest(path)
        if m is not None:
            analysed = (path / "artifacts" / "analysis.json").exists()
            out.append(RunEntry(path.name, m, analysed))
    return sorted(out, key=lambda r: r.manifest.created, reverse=True)


@dataclass
class RunData:
    """One run opened for reading; close it (or use `with`) to release records.sqlite."""

    root: Path
    manifest: Manifest
    protocol: Protocol | None
    """None when the frozen protocol.yaml cannot be read (then no factor or plant names)."""
    records: Records | None
    """None before the run has a records file."""
    analysis: AnalysisResult | None
    """None until the analyze stage writes artifacts/analysis.json."""
    problem: str | None = None
    """Why the records cannot be read, when they exist but cannot."""
    _items: list[Item] | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.root.name

    def close(self) -> None:
        if self.records is not None:
            self.records.close()

    def __enter__(self) -> RunData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # what the pages ask ------------------------------------------------------------------
    def items(self) -> list[Item]:
        if self._items is None:
            self._items = self.records.items() if self.records else []
        return self._items

    def item(self, item_id: str) -> Item | None:
        return next((i for i in self.items() if i.id == item_id), None)

    def cells(self) -> list[str]:
        """Cell keys in design order: the analysis' order, else the items' as they were made."""
        if self.analysis is not None:
            return [c.cell for c in self.analysis.cells]
        return list(dict.fromkeys(i.cell for i in self.items()))

    def stages(self) -> list[tuple[str, StageRow | None]]:
        """Each stage with its recorded status and counts (None: not started), in order."""
        rows = self.records.stages() if self.records else {}
        probes = self.protocol is not None and self.protocol.probes is not None
        known = [(s, rows.get(s)) for s in STAGES if s in rows or s != "probe" or probes]
        return known + [(s, r) for s, r in rows.items() if s not in STAGES]

    def facts(self) -> RunFacts | None:
        """What the report's notices (offline, pilot, incomplete, open flags) are made from;
        None without a readable protocol."""
        if self.protocol is None:
            return None
        stages = self.records.stages() if self.records else {}
        return RunFacts(self.id, self.manifest, self.protocol, stages, self.flags())

    def verdicts(self) -> list[Verdict]:
        """Every verdict of every role (primary, overlap, duplicate), by item."""
        return self.records.verdicts(None) if self.records else []

    def counted(self) -> dict[str, Verdict]:
        """The verdict each item counts with in the rates (the analysis' `primary_verdicts`)."""
        return primary_verdicts(self.records.verdicts()) if self.records else {}

    def screen(self) -> dict[str, list[str]]:
        return self.records.screen() if self.records else {}

    def flags(self) -> list[FlagRow]:
        return self.records.flags() if self.records else []

    def counts(self) -> dict[str, int]:
        """Live counts for a run in progress: items, responses, verdicts so far."""
        if self.records is None:
            return {"items": 0, "responses": 0, "verdicts": 0}
        verdicts = self.verdicts()
        return {
            "items": len(self.items()),
            "responses": len(self.records.responses()),
            "verdicts": sum(1 for v in verdicts if v.status != VerdictStatus.PENDING),
        }


def open_run(root: Path, run_id: str) -> RunData | None:
    """The run `run_id` under `root` opened for reading; None when there is no such run."""
    if not RUN_ID.match(run_id):
        return None
    path = root / run_id
    manifest = read_manifest(path)
    if manifest is None:
        return None
    try:
        protocol = load_protocol(path / "protocol.yaml").protocol
    except ProtocolError:
        protocol = None
    db = path / "records.sqlite"
    records, problem = None, None
    try:
        records = Records(db, read_only=True) if db.exists() else None
    except UserError as e:  # written by an earlier version: only a writer may bring it up
        problem = str(e)
    analysis_path = path / "artifacts" / "analysis.json"
    analysis = load_analysis(analysis_path) if analysis_path.exists() else None
    return RunData(path, manifest, protocol, records, analysis, problem)
