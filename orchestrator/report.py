"""report.md from the records and analysis.json, through a Jinja2 template; plus jsonl exports.

`research report RUN` calls `write_report` directly: a report can always be rebuilt from records.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from memory import write_atomic
from orchestrator.progress import usage_totals
from orchestrator.protocol.schema import Protocol
from orchestrator.rundir import RunDir

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _signed(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:+.1f}"


_env.filters["pct"] = _pct
_env.filters["signed"] = _signed


def export_records(run: RunDir) -> dict[str, int]:
    """Write items, responses and verdicts as jsonl under artifacts/ (text, so git keeps them)."""
    rec = run.records
    responses = rec.responses()
    screen = rec.screen()
    rows = {
        "items.jsonl": [asdict(i) for i in rec.items()],
        "responses.jsonl": [
            {**asdict(r), "screen": screen.get(r.item_id, [])} for r in responses.values()
        ],
        "verdicts.jsonl": [asdict(v) for v in rec.verdicts(None)],
    }
    for name, data in rows.items():
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in data)
        write_atomic(run.path("artifacts", name), text)
    return {name: len(data) for name, data in rows.items()}


def write_report(run: RunDir, protocol: Protocol, analysis: dict[str, Any]) -> Path:
    export_records(run)
    rec = run.records
    text = _env.get_template("report.md.j2").render(
        p=protocol,
        m=run.manifest,
        a=analysis,
        stages=rec.stages(),
        decisions=rec.decisions(),
        flags=rec.flags(),
        usage=usage_totals(run),
        usage_by_stage=rec.usage(),
        factors=list(protocol.design.factors),
        batches=rec.batches(),
    )
    path = run.path("report.md")
    write_atomic(path, text)
    return path
