"""A report says what it is before anything else: a pilot, an offline smoke test, a run not
finished, a run with flags nobody has decided. Each from a real run against the fake world (the
offline run itself is in test_offline.py), its report read as a user opens it: the notices come
before the contents and the summary box, and the status never says a bare "complete" for a run
whose numbers are not a result.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from orchestrator import runner
from orchestrator.analysis import AnalysisResult
from orchestrator.context import as_run
from orchestrator.report import write_report
from orchestrator.rundir import RunDir
from tests.conftest import DEU, research
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.world import deu_world
from tests.orchestrator.test_evaluation import flagging_judge


def top(md: str) -> str:
    """What a reader sees of report.md before the table of contents."""
    return md.split("\n1. [", 1)[0]


def banner_titles(html: str) -> list[str]:
    """The notices of report.html, in order, each before the summary box."""
    header = html.split('<div class="meta">', 1)[0]
    return re.findall(r'<div class="banner \w+" role="alert"><strong>([^<]+)\.</strong>', header)


def status_box(html: str) -> str:
    return re.search(r"<div>status<b>([^<]*)</b></div>", html).group(1)


def test_a_pilot_report_opens_with_the_pilot_notice(completed_pilot: Path) -> None:
    md = (completed_pilot / "report.md").read_text()
    html = (completed_pilot / "report.html").read_text()
    head = top(md)
    notice = "> **⚠ Pilot run: too small to decide.** n per cell = 3 (the protocol plans 50), "
    assert notice + "too small for the pre-registered decisions." in head
    # what the analysis did decide at this size is said, not hidden
    analysis = json.loads((completed_pilot / "artifacts" / "analysis.json").read_text())
    decided = [h["decision"] for h in analysis["decisions"]["hypotheses"]]
    assert f"{decided.count('inconclusive')} inconclusive" in head
    assert "their decisions are not the pre-registered result" in head
    assert "status: complete (pilot)" in head and "24 / 24 items scored" in head
    assert "Offline" not in head and "Incomplete" not in head and "Unresolved" not in head
    assert banner_titles(html) == ["Pilot run: too small to decide"]
    assert status_box(html) == "complete (pilot)"


def test_a_report_rebuilt_mid_run_says_it_is_incomplete(env: dict, runs: Path) -> None:
    out = runner.start(DEU, pilot=True, run_id="mid")  # waits at the design checkpoint
    assert out.waiting_at == "design"
    r = research("report", "mid", env=env)
    assert r.returncode == 0, r.stderr
    md = (runs / "mid" / "report.md").read_text()
    html = (runs / "mid" / "report.html").read_text()
    head = top(md)
    assert "> **⚠ Incomplete run: partial numbers.** The run is awaiting approval." in head
    assert "Stages not done: collect, screen, probe, evaluate, analyze." in head
    assert "(0 of 24 items scored) and is partial" in head and "`research resume mid`" in head
    assert "status: awaiting_approval (pilot, incomplete)" in head
    assert banner_titles(html) == [
        "Pilot run: too small to decide",
        "Incomplete run: partial numbers",
    ]
    assert status_box(html) == "awaiting_approval (pilot, incomplete)"


def test_open_flags_are_announced_at_the_top(env: dict, runs: Path, world: FakeAnthropic) -> None:
    world.handler = deu_world(judge_handler=flagging_judge("evaluator-3"))
    out = runner.start(DEU, pilot=True, yes=True, run_id="flagged")
    assert out.waiting_at == "evaluate" and out.blocked_by  # --yes stops at the open flag
    r = research("report", "flagged", env=env)
    assert r.returncode == 0, r.stderr
    md = (runs / "flagged" / "report.md").read_text()
    html = (runs / "flagged" / "report.html").read_text()
    head = top(md)
    with RunDir(runs / "flagged") as run:
        open_ = [f for f in run.records.flags() if f.resolution is None]
    assert {f.kind for f in open_} == {"data_quality"}  # the evaluator's, and the screen's own
    n = len(open_)
    assert f"> **⚠ Unresolved flags.** {n} flag(s) not yet decided at a checkpoint: " in head
    assert f"data_quality ({n})" in head
    assert "`--yes` does not approve past 1 of them: a person decides those." in head
    assert "Stages not done: analyze." in head  # stopped at evaluate: not analysed by the run
    assert banner_titles(html) == [
        "Pilot run: too small to decide",
        "Incomplete run: partial numbers",
        "Unresolved flags",
    ]
    # once a person decides the flag, the notice goes with it
    assert runner.resume("flagged", yes=True, accept_flags=True).status == "complete"
    md = (runs / "flagged" / "report.md").read_text()
    assert "Unresolved flags" not in top(md) and "Incomplete" not in top(md)


def test_an_offline_runs_analyst_is_labelled_as_such(completed_pilot: Path, tmp_path: Path) -> None:
    """The report of a run whose manifest says offline: the analyst's themes stay, under the
    notice and labelled as the offline model's, unread by a person."""
    run_dir = Path(shutil.copytree(completed_pilot, tmp_path / "pilot"))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest.update(offline=True, local_model="HuggingFaceTB/SmolLM2-135M-Instruct")
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    qualitative = json.loads((run_dir / "artifacts" / "qualitative.json").read_text())
    qualitative["model"] = manifest["local_model"]  # offline, the analyst is the local model
    (run_dir / "artifacts" / "qualitative.json").write_text(json.dumps(qualitative))
    with RunDir(run_dir) as run:
        data = run.path("artifacts", "analysis.json").read_text()
        analysis = AnalysisResult.model_validate_json(data)
        protocol = as_run(run.loaded.protocol, offline=True, local_model=manifest["local_model"])
        md = write_report(run, protocol, analysis).read_text()
    html = (run_dir / "report.html").read_text()
    head = top(md)
    assert head.index("Offline smoke test: not a result") < head.index("Pilot run")
    assert "Made with the offline model `HuggingFaceTB/SmolLM2-135M-Instruct`, which stood in " in (
        head
    )
    assert "`claude-sonnet-4-6`" in head and "a smoke test of the pipeline, not a result" in head
    assert "status: complete (offline smoke test, pilot)" in head
    assert status_box(html) == "complete (offline smoke test, pilot)"
    assert banner_titles(html)[0] == "Offline smoke test: not a result"
    qualitative = md.split("## Qualitative analysis\n", 1)[1].split("\n## ", 1)[0]
    assert qualitative.lstrip().startswith(
        "**Written by the offline model `HuggingFaceTB/SmolLM2-135M-Instruct`; not read by a "
        "person.**"
    )
    assert "### Explicit reports" in qualitative  # kept, under the label
    assert "not read by a person" in html.split('id="qualitative"', 1)[1]
    limitations = md.split("## Limitations\n", 1)[1].split("\n## ", 1)[0]
    assert "Qualitative analysis (by the offline model " in limitations
