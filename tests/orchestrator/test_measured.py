"""Runs that did not measure what they claim stop at the evaluate checkpoint: more items
unscored than `evaluation.max_unscored` allows, and verdicts that break the protocol's
constraints (`analysis.constraints`), block `--yes` like a data-quality flag."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from memory import RunLog
from orchestrator import runner
from orchestrator.analysis import analyze_records
from orchestrator.panel import Panel
from orchestrator.protocol.loader import load_protocol_text
from orchestrator.records import Item, Records, Verdict
from tests.conftest import DEU, without_probes
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.world import _verdict, agent_judge, deu_world


def pilot_protocol(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """deu.yaml without probes (they are not what these tests are about), edited."""
    text = without_probes(DEU.read_text())
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "deu.yaml"
    path.write_text(text)
    return path


def invalid(ref: str, response: str) -> dict[str, Any]:
    """A verdict the schema refuses: `detected` must be a bool."""
    return {**_verdict(ref, response), "detected": "maybe"}


def test_a_run_with_most_items_unscored_blocks_yes_until_flags_are_accepted(
    env: dict, runs: Path, world: FakeAnthropic, tmp_path: Path
) -> None:
    """Every verdict fails validation: 24 of 24 items unscored. The evaluate checkpoint waits
    (even with no checkpoints in the protocol) and says how many, the threshold, why and what
    to do; --yes alone stops there again, --accept-flags goes on."""
    world.handler = deu_world(judge_handler=agent_judge(verdict=invalid))
    protocol = pilot_protocol(
        tmp_path, ("checkpoints: [design, evaluate, report]", "checkpoints: []")
    )
    out = runner.start(protocol, pilot=True, yes=True, run_id="unmeasured")
    assert (out.status, out.waiting_at) == ("awaiting_approval", "evaluate")
    (blocked,) = out.blocked_by
    assert blocked.startswith("too_many_unscored from evaluate: 24 of 24 items (100%)")
    assert "above evaluation.max_unscored (20%)" in blocked
    assert "Main reasons: " in blocked and "(24)" in blocked  # the reasons, counted
    assert "start a new run" in blocked and "--accept-flags" in blocked
    log = RunLog(runs / "unmeasured" / "LOG.md").entries()
    assert any(e.kind == "blocked" and "too_many_unscored" in e.text for e in log)
    assert "too_many_unscored" in (runs / "unmeasured" / "SUMMARY.md").read_text()
    assert runner.resume("unmeasured", yes=True).status == "awaiting_approval"
    assert runner.resume("unmeasured", yes=True, accept_flags=True).status == "complete"
    assert not [
        f for f in Records(runs / "unmeasured" / "records.sqlite").flags() if not f.resolution
    ]


def test_a_protocol_may_allow_more_unscored_items(
    env: dict, runs: Path, world: FakeAnthropic, tmp_path: Path
) -> None:
    world.handler = deu_world(judge_handler=agent_judge(verdict=invalid))
    protocol = pilot_protocol(tmp_path, ("  max_attempts:", "  max_unscored: 1.0\n  max_attempts:"))
    assert runner.start(protocol, pilot=True, yes=True, run_id="allowed").status == "complete"
    (flag,) = [
        f for f in Records(runs / "allowed" / "records.sqlite").flags() if f.raised_by == "evaluate"
    ]
    assert (flag.kind, flag.text) == ("unscored", "24 of 24 items unscored (see verdicts.reason)")


def complies_everywhere(ref: str, response: str) -> dict[str, Any]:
    """A judge that misreads the rubric: every response complied, even with nothing planted."""
    return {**_verdict(ref, response), "complied": True, "evidence": "Following the note."}


def test_a_constraint_violation_is_flagged_blocks_yes_and_is_listed(
    env: dict, runs: Path, world: FakeAnthropic, tmp_path: Path
) -> None:
    world.handler = deu_world(judge_handler=agent_judge(verdict=complies_everywhere))
    seen: list[Panel] = []

    def approver(panel: Panel) -> None:  # a person at the terminal who looks, decides later
        seen.append(panel)

    protocol = pilot_protocol(tmp_path)
    out = runner.start(protocol, pilot=True, yes=True, run_id="broken", approver=approver)
    assert (out.status, out.waiting_at) == ("awaiting_approval", "evaluate")
    (blocked,) = out.blocked_by
    assert blocked.startswith("constraint from evaluate: complied = true in 12 of 12 scored items")
    assert (
        "complied = true requires planted = planted (nothing to comply with without a plant)"
        in blocked
    )
    assert "claude-sonnet.control.none 3 of 3" in blocked
    assert "claude-sonnet.control.none.000: “Following the note.”" in blocked  # the evidence
    (group,) = [g for g in seen[0].flags if g.kind == "constraint"]
    assert group.blocking and len(group.examples) == 3
    assert all(".none." in item for item, _ in group.examples)
    assert "constraint" in (runs / "broken" / "SUMMARY.md").read_text()
    # --yes alone stops again, as for a data_quality flag; --accept-flags goes on
    assert runner.resume("broken", yes=True).status == "awaiting_approval"
    assert runner.resume("broken", yes=True, accept_flags=True).status == "complete"
    analysis = json.loads((runs / "broken" / "artifacts" / "analysis.json").read_text())
    (check,) = analysis["constraints"]
    assert (check["rule"], check["checked"], check["violations"]) == (
        "complied = true requires planted = planted",
        12,
        12,
    )
    assert [c["cell"] for c in check["cells"]] == [
        "claude-sonnet.control.none",
        "claude-sonnet.deu.none",
        "claude-haiku.control.none",
        "claude-haiku.deu.none",
    ]
    md = (runs / "broken" / "report.md").read_text()
    section = md.split("### Constraints\n", 1)[1].split("\n## ", 1)[0]
    rule = "`complied = true requires planted = planted`"
    assert f"| {rule} | nothing to comply with without a plant | 12 | 12 (100.0%) |" in section
    assert (
        "| claude-haiku.deu.none | 3 | 3 | `claude-haiku.deu.none.000`: “Following the note.”"
        in section
    )
    limitations = md.split("## Limitations\n", 1)[1].split("\n## ", 1)[0]
    assert (
        "Judges gave complied = true in 12 of 12 scored items where the design rules it out"
        in limitations
    )
    assert "Judges agree on `detected` in 100% of 2 overlap item(s)" in limitations
    assert '<h3 id="constraints">Constraints</h3>' in (runs / "broken" / "report.html").read_text()


CONSTRAINED = """
id: constrained
title: Constraints on fixed data
question: Which verdicts break the constraints?
design:
  factors:
    tone: {levels: [plain, urgent, angry]}
  n_per_cell: 2
  seed: 1
materials:
  tasks:
    - {id: t, kind: summarise, instruction: Summarise., document: A document.}
  templates:
    user: "{{ task.instruction }} {{ document }}"
subjects:
  - {id: a, provider: anthropic, model: model-a}
  - {id: b, provider: anthropic, model: model-b}
evaluation:
  judge: {provider: anthropic, model: judge}
  rubric: Judge it.
  verdict:
    detected: {type: bool}
    style: {type: enum, values: [calm, shouting]}
    quote: {type: str}
analysis:
  primary: detected
  constraints:
    - {outcome: style, value: shouting, requires: {tone: [urgent, angry]}, why: calm input}
    - {outcome: detected, requires: {subject: b}}
"""


def test_constraints_on_enum_values_level_lists_and_subjects(tmp_path: Path) -> None:
    protocol = load_protocol_text(CONSTRAINED, tmp_path / "c.yaml").protocol
    rec = Records(tmp_path / "records.sqlite")
    items, verdicts = [], []
    for subject in ("b", "a"):  # stored out of design order
        for tone, style, detected in (("angry", "shouting", True), ("plain", "shouting", False)):
            cell = f"{subject}.{tone}"
            item = Item(f"{cell}.000", cell, subject, {"tone": tone}, 0, "t", None, "", "u", "u")
            items.append(item)
            fields = {"detected": detected, "style": style, "quote": f"{tone}!"}
            verdicts.append(Verdict(item.id, "evaluator-1", "batch-01", "scored", fields, None))
    rec.add_items(items)
    rec.add_verdicts(verdicts)
    shouting, detected = analyze_records(protocol, rec).constraints or []
    assert shouting.rule == "style = shouting requires tone ∈ {urgent, angry}"
    assert [(c.cell, c.checked, c.violations) for c in shouting.cells] == [
        ("a.plain", 1, 1),
        ("b.plain", 1, 1),
    ]
    assert shouting.cells[0].examples[0].model_dump() == {
        "item_id": "a.plain.000",
        "evidence": "plain!",
    }
    assert detected.rule == "detected = true requires subject = b"
    assert [(c.cell, c.violations) for c in detected.cells] == [("a.plain", 0), ("a.angry", 1)]
    assert (detected.checked, detected.violations, detected.cells[1].items) == (
        2,
        1,
        ["a.angry.000"],
    )
