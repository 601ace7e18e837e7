"""Pre-registration and amendments, the design checkpoint's forecast, and `research compare`."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from memory import RunLog
from orchestrator import runner
from orchestrator.context import NoProgress, RunContext
from orchestrator.records import Records
from orchestrator.rundir import RunDir
from tests.conftest import DEU, copy_run, research
from tests.fakes.anthropic_server import FakeAnthropic


def amended(run_dir: Path, tmp_path: Path, old: str, new: str) -> Path:
    """The run's frozen protocol with one edit, as a researcher would write it."""
    text = (run_dir / "protocol.yaml").read_text()
    assert old in text
    path = tmp_path / "amended.yaml"
    path.write_text(text.replace(old, new, 1))
    if not (tmp_path / "data").exists():  # the data files it names, beside it
        shutil.copytree(run_dir / "data", tmp_path / "data")
    return path


def api_calls(run_dir: Path) -> int:
    rec = Records(run_dir / "records.sqlite")
    try:
        return int(sum(u["calls"] for u in rec.usage().values()))
    finally:
        rec.close()


def test_an_amendment_is_proposed_decided_logged_and_reported(
    env: dict, runs: Path, completed_pilot: Path, tmp_path: Path
) -> None:
    run_dir = copy_run(completed_pilot, runs, "am")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    prereg = manifest["preregistered_sha256"]
    assert prereg == manifest["protocol_sha256"]
    calls = api_calls(run_dir)
    path = amended(run_dir, tmp_path, "correction: holm", "correction: bonferroni")

    # proposed without a terminal: it waits for a person
    r = research("amend", "am", str(path), "--note", "reviewer asked for Bonferroni", env=env)
    assert r.returncode == 0, r.stderr
    assert "pending" in r.stdout and "research approve am" in r.stdout
    assert "correction: holm" in (run_dir / "protocol.yaml").read_text()  # not yet in force
    assert "Amendment 1 to the analysis is pending" in (run_dir / "SUMMARY.md").read_text()
    # a second proposal before the first is decided is refused
    again = research("amend", "am", str(path), "--note", "twice", env=env)
    assert again.returncode != 0 and "still pending" in again.stderr

    r = research("approve", "am", "--note", "agreed in lab meeting", "--by", "carol", env=env)
    assert r.returncode == 0, r.stderr
    assert "amendment-1" in r.stdout
    assert (run_dir / "protocol.yaml").read_text() == path.read_text()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["preregistered_sha256"] == prereg != manifest["protocol_sha256"]
    # the analysis and report were rebuilt under the amended analysis, without any API call
    analysis = json.loads((run_dir / "artifacts" / "analysis.json").read_text())
    assert analysis["correction"]["method"] == "bonferroni"
    assert api_calls(run_dir) == calls
    kinds = [e.kind for e in RunLog(run_dir / "LOG.md").entries()]
    assert "amendment_proposed" in kinds and "amendment_approved" in kinds
    log = (run_dir / "LOG.md").read_text()
    assert "-  correction: holm" in log and "+  correction: bonferroni" in log
    assert "reviewer asked for Bonferroni" in log and "agreed in lab meeting" in log
    report = (run_dir / "report.md").read_text()
    assert "reviewer asked for Bonferroni" in report
    # the amended run opens (its frozen protocol matches the manifest) and keeps keying the
    # call ledger by the pre-registered hash, so nothing already called is called again
    with RunDir.open(runs, "am") as run:
        assert RunContext(run, run.loaded.protocol, NoProgress()).sha == prereg


def test_an_amendment_may_touch_only_the_analysis(env: dict, runs: Path, tmp_path: Path) -> None:
    runner.start(DEU, pilot=True, run_id="frozen")  # stops at the design checkpoint
    run_dir = runs / "frozen"
    path = amended(run_dir, tmp_path, "seed: ", "seed: 1")
    r = research("amend", "frozen", str(path), "--note", "new seed", "--yes", env=env)
    assert r.returncode != 0
    assert "changes design" in r.stderr and "only its `analysis` section" in r.stderr
    same = research("amend", "frozen", str(run_dir / "protocol.yaml"), "--note", "x", env=env)
    assert same.returncode != 0 and "nothing to amend" in same.stderr
    path = amended(run_dir, tmp_path, "correction: holm", "correction: none")
    no_note = research("amend", "frozen", str(path), env=env)
    assert no_note.returncode != 0 and "needs a reason" in no_note.stderr
    assert not Records(run_dir / "records.sqlite").amendments()


def test_a_pending_amendment_holds_the_run_until_decided(
    env: dict, runs: Path, world: FakeAnthropic, tmp_path: Path
) -> None:
    out = runner.start(DEU, pilot=True, run_id="hold")
    assert out.waiting_at == "design"
    run_dir = runs / "hold"
    path = amended(run_dir, tmp_path, "correction: holm", "correction: fdr_bh")
    assert research("amend", "hold", str(path), "--note", "FDR, not FWER", env=env).returncode == 0
    r = research("resume", "hold", "--yes", env=env)
    assert r.returncode != 0 and "amendment 1" in r.stderr and "pending" in r.stderr
    assert not Records(run_dir / "records.sqlite").responses()  # nothing ran
    # `approve` decides the amendment first; the checkpoint is still waiting after it
    runner.approve("hold", reject=True, note="stick to the plan", by="dana")
    assert runner.resume("hold").waiting_at == "design"
    assert runner.resume("hold", yes=True).status == "complete"
    analysis = json.loads((run_dir / "artifacts" / "analysis.json").read_text())
    assert analysis["correction"]["method"] == "holm"  # the rejected amendment never applied
    rec = Records(run_dir / "records.sqlite")
    [a] = rec.amendments()
    assert (a.status, a.decided_by, a.decision_note) == ("rejected", "dana", "stick to the plan")


def test_the_design_checkpoint_forecasts_precision_and_cost(env: dict, runs: Path) -> None:
    out = runner.start(DEU, pilot=True, run_id="fc")
    assert out.waiting_at == "design"
    f = json.loads((runs / "fc" / "artifacts" / "forecast.json").read_text())
    assert len(f["cells"]) == 8

    def wilson_half(p: float, n: int, z: float = 1.959963984540054) -> float:
        return z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)

    # deu.yaml assumes 0.4, 0.55 under DEU, 0.05 with no plant (the most specific entry wins;
    # between equally specific ones, the later)
    for c in f["cells"]:
        lv = c["levels"]
        want = 0.05 if lv["planted"] == "none" else 0.55 if lv["framing"] == "deu" else 0.4
        assert c["assumed_rate"] == want, c["cell"]
        assert c["n"] == 3 and math.isclose(c["half_width"], wilson_half(want, 3), rel_tol=1e-9)
    detection = [x for x in f["contrasts"] if x["name"] == "deu_effect_on_detection"]
    assert len(detection) == 2 and all(x["half_width"] > 0.3 for x in detection)
    cost = f["cost"]
    assert cost["online_usd"] > cost["batch_usd"] > 0 and cost["input_tokens"] > 0
    # the same numbers are what the human sees at the checkpoint, before anything is spent
    log = (runs / "fc" / "LOG.md").read_text()
    assert "Batch API" in log and "precision: detected per cell" in log
    assert not Records(runs / "fc" / "records.sqlite").responses()


def test_compare_puts_two_runs_side_by_side(
    env: dict, runs: Path, completed_pilot: Path, tmp_path: Path
) -> None:
    copy_run(completed_pilot, runs, "a")
    copy_run(completed_pilot, runs, "b")
    out = tmp_path / "cmp.md"
    r = research("compare", "a", "b", "--out", str(out), env=env)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert text.startswith("# a vs b")
    for run_id in ("a", "b"):
        analysis = json.loads((runs / run_id / "artifacts" / "analysis.json").read_text())
        for cell in analysis["cells"]:
            o = cell["outcomes"]["detected"]
            assert f"{100 * o['rate']:.1f}% [{100 * o['lo']:.1f}, {100 * o['hi']:.1f}]" in text
    # one row per subject, then the contrast pooled over both
    assert text.count("deu_effect_on_detection") == 3
    assert "deu_effect_on_detection (detected) · pooled" in text
    assert "framing_by_model" in text
    assert "detected by cell" in r.stdout


def test_compare_warns_when_both_sides_are_one_run(
    env: dict, runs: Path, completed_pilot: Path
) -> None:
    copy_run(completed_pilot, runs, "a")
    copy_run(completed_pilot, runs, "b")

    def said(*args: str) -> str:
        r = research("compare", *args, env=env)
        assert r.returncode == 0, r.stderr  # a warning, not an error: the tables still print
        assert "detected by cell" in r.stdout
        return " ".join(r.stdout.split())

    for other in ("a", str(runs / "a")):  # by id, or by its path
        out = said("a", other)
        assert "warning: a and" in out and "are the same run directory" in out
        assert "compared with itself" in out
    out = said("a", "b")
    assert "warning: a and b are copies of one run (run `pilot` created" in out
    # a different run (another creation) is compared without a warning
    manifest = json.loads((runs / "b" / "manifest.json").read_text())
    manifest["created"] = "2000-01-01T00:00:00Z"
    (runs / "b" / "manifest.json").write_text(json.dumps(manifest))
    assert "warning" not in said("a", "b")


def test_an_amendment_approved_with_yes_is_recorded_as_unreviewed(
    env: dict, runs: Path, completed_pilot: Path, tmp_path: Path
) -> None:
    run_dir = copy_run(completed_pilot, runs, "auto")
    path = amended(run_dir, tmp_path, "correction: holm", "correction: bonferroni")
    r = research(
        "amend", "auto", str(path), "--note", "Bonferroni", "--by", "erin", "--yes", env=env
    )
    assert r.returncode == 0, r.stderr
    assert "amendment 1 approved by --yes" in r.stdout
    [a] = Records(run_dir / "records.sqlite").amendments()
    assert (a.status, a.by, a.decided_by) == ("approved", "erin", "--yes")
    assert a.decision_note == "auto-approved with --yes when proposed, without a human review"
    # LOG.md says it as a checkpoint approved with --yes says it: by the flag, no person
    [entry] = [e for e in RunLog(run_dir / "LOG.md").entries() if e.kind == "amendment_approved"]
    assert entry.text.startswith("Amendment 1 approved by --yes. Note: auto-approved with --yes")
    assert "without a human review" in entry.text
    report = (run_dir / "report.md").read_text()
    assert "Checkpoint `amendment-1` approved automatically (`--yes`), without a human review." in (
        report
    )
    assert "| 1 | approved |" in report and "| --yes, " in report
