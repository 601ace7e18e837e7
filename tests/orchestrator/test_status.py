"""`research status`: a table readable at 80 columns, quick (no SDK loaded to list runs), a run
by id or by path, and a run whose process is gone told apart from one that runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.manifest import Manifest
from tests.conftest import ROOT, research

STATUSES = {
    "deu-20260712-102030": "awaiting_approval",
    "sincerity-20260713-090000": "interrupted",
    "deu-20260714-235959": "complete",
    "killed-run": "running",  # its process was killed: nobody holds the lock
}


@pytest.fixture
def listed(tmp_path: Path) -> dict[str, str]:
    runs = tmp_path / "runs"
    for n, (run_id, status) in enumerate(STATUSES.items()):
        root = runs / run_id
        root.mkdir(parents=True)
        m = Manifest(
            run_id=run_id,
            protocol_id=run_id.split("-")[0],
            protocol_sha256="0" * 64,
            protocol_source="protocols/x.yaml",
            code_commit=None,
            code_dirty=None,
            size="pilot",
            offline=n % 2 == 0,
            models=["claude-sonnet-4-6"],
            created=f"2026-07-1{n + 2}T10:20:31Z",
            updated=f"2026-07-1{n + 2}T11:45:07Z",
            status=status,
        )
        (root / "manifest.json").write_text(m.model_dump_json())
        (root / "SUMMARY.md").write_text(f"# SUMMARY — {run_id}\n\n- Status: **{status}**\n")
    return {**os.environ, "RESEARCH_RUNS_DIR": str(runs), "COLUMNS": "80"}


def test_table_fits_80_columns_without_cutting_status_or_times(listed: dict) -> None:
    r = research("status", env=listed)
    assert r.returncode == 0, r.stderr
    assert "…" not in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    for word in ("waiting", "interrupted", "complete", "stopped"):
        assert word in r.stdout, r.stdout
    assert "07-12 10:20" in r.stdout and "07-15 11:45" in r.stdout
    # ids as `research run` makes them (protocol-date-time) whole on one line; longer ones
    # fold onto a second line, never cut
    assert "deu-20260712-102030" in r.stdout and "deu-20260714-235959" in r.stdout
    assert "sincerity-20260713-09" in r.stdout
    rows = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()}
    assert "stopped" in rows["killed-run"]  # says running, but no process holds it


def test_a_run_by_path_and_a_dead_running_one_says_so(listed: dict) -> None:
    path = Path(listed["RESEARCH_RUNS_DIR"]) / "killed-run"
    r = research("status", str(path), env={**listed, "RESEARCH_RUNS_DIR": "/nonexistent"})
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stdout.split())
    assert "SUMMARY — killed-run" in said
    assert "not running: the process that ran killed-run is gone" in said
    assert "research resume killed-run" in said


def test_a_run_in_a_programme_names_it_and_its_program_md(listed: dict, tmp_path: Path) -> None:
    path = Path(listed["RESEARCH_RUNS_DIR"]) / "deu-20260714-235959"
    m = Manifest.model_validate_json((path / "manifest.json").read_text())
    joined = m.model_copy(update={"program": "deu", "program_dir": str(tmp_path / "programs/deu")})
    (path / "manifest.json").write_text(joined.model_dump_json())
    r = research("status", "deu-20260714-235959", env=listed)
    assert r.returncode == 0, r.stderr
    where = tmp_path / "programs" / "deu" / "PROGRAM.md"
    assert f"programme: deu ({where})" in r.stdout.splitlines()
    # a run in no programme says nothing of one
    assert "programme" not in research("status", "deu-20260712-102030", env=listed).stdout


def test_listing_runs_loads_no_sdk(listed: dict) -> None:
    script = (
        "import sys\n"
        "from orchestrator.cli.app import app\n"
        "app(['status'], standalone_mode=False)\n"
        "heavy = ('anthropic', 'langgraph', 'torch')\n"
        "print('loaded:', sorted(m for m in heavy if m in sys.modules))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=listed, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "loaded: []" in r.stdout
