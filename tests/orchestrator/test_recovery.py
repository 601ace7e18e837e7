"""Planted-effect recovery: a full-size run against a world with known rates recovers them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from statsmodels.stats.proportion import proportion_confint

from orchestrator import runner
from orchestrator.protocol import load_protocol
from orchestrator.protocol.stimuli import build_stimuli
from tests.conftest import DEU
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.world import agent_judge, deu_world, noisy, notice_probability

RATES = {"p_control": 0.3, "p_deu": 0.6, "p_false": 0.05}
JUDGE_ERROR = 0.1


def test_full_run_recovers_each_cells_rate(env: dict, runs: Path, world: FakeAnthropic,
                                           tmp_path: Path) -> None:  # fmt: skip
    # the flagship protocol without its probe stage (not what is tested here, and the slowest)
    text = DEU.read_text()
    text = re.sub(r"\nprobes:\n(  .*\n|\n)*", "\n", text)
    protocol_path = tmp_path / "deu.yaml"
    protocol_path.write_text(text)
    assert load_protocol(protocol_path).protocol.probes is None
    judge = agent_judge(verdict=noisy(JUDGE_ERROR))
    world.handler = deu_world(**RATES, judge_handler=judge, independent=True)

    out = runner.start(protocol_path, yes=True, run_id="full")
    assert out.status == "complete"
    analysis = json.loads((runs / "full" / "artifacts" / "analysis.json").read_text())
    assert analysis["totals"] == {"items": 400, "scored": 400, "unscored": 0}

    # what each cell's rate should be: the subjects' notice probability for the stimuli it
    # holds, seen through a judge that misreads a known share of responses
    protocol = load_protocol(protocol_path).protocol
    expected: dict[str, list[float]] = {}
    for s in build_stimuli(protocol, pilot=False):
        p = notice_probability(s.system, s.user, **RATES)
        expected.setdefault(s.cell.key, []).append(p * (1 - JUDGE_ERROR) + (1 - p) * JUDGE_ERROR)
    assert len(analysis["cells"]) == 8
    for cell in analysis["cells"]:
        o = cell["outcomes"]["detected"]
        truth = sum(expected[cell["cell"]]) / len(expected[cell["cell"]])
        assert o["n"] == 50 and o["k"] == round(o["rate"] * 50)
        # each cell's own 95% Wilson interval, widened to hold for all 8 cells at once
        # (Bonferroni): eight separate 95% intervals miss somewhere one time in three
        lo, hi = proportion_confint(o["k"], o["n"], alpha=0.05 / 8, method="wilson")
        assert lo <= truth <= hi, f"{cell['cell']}: {truth:.3f} not in [{lo:.3f}, {hi:.3f}]"
        assert o["lo"] >= lo and o["hi"] <= hi  # the report's 95% interval sits inside
    # the evaluators judged 10% of the items twice and agree with each other and themselves:
    # the misreading is a property of the response, the same for every evaluator
    agreement = json.loads((runs / "full" / "artifacts" / "agreement.json").read_text())
    assert agreement["overlap_items"] == 40 and agreement["duplicates"] == 8
    assert agreement["fields"]["detected"]["agree"] == 1.0
