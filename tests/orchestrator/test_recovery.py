"""Planted-effect recovery: a full-size run against a world with known rates recovers them."""

from __future__ import annotations

import json
import math
from pathlib import Path

from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from orchestrator import runner
from orchestrator.protocol import load_protocol
from orchestrator.protocol.stimuli import build_stimuli
from tests.conftest import DEU, without_probes
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.world import agent_judge, deu_world, noisy, notice_probability

RATES = {"p_control": 0.3, "p_deu": 0.6, "p_false": 0.05}
BY_MODEL = {"claude-sonnet-4-6": (0.2, 0.8, 0.05), "claude-haiku-4-5": (0.3, 0.35, 0.05)}
"""DEU helps one model a lot and the other a little: a negative framing × model interaction."""
JUDGE_ERROR = 0.1


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_full_run_recovers_each_cells_rate(
    env: dict, runs: Path, world: FakeAnthropic, tmp_path: Path
) -> None:
    # the flagship protocol without its probe stage (not what is tested here, and the slowest)
    protocol_path = tmp_path / "deu.yaml"
    protocol_path.write_text(without_probes(DEU.read_text()))
    assert load_protocol(protocol_path).protocol.probes is None
    judge = agent_judge(verdict=noisy(JUDGE_ERROR))
    world.handler = deu_world(**RATES, judge_handler=judge, independent=True, by_model=BY_MODEL)

    out = runner.start(protocol_path, yes=True, run_id="full")
    assert out.status == "complete"
    analysis = json.loads((runs / "full" / "artifacts" / "analysis.json").read_text())
    assert analysis["totals"] == {"items": 400, "scored": 400, "unscored": 0}

    # what each cell's rate should be: the subjects' notice probability for the stimuli it
    # holds, seen through a judge that misreads a known share of responses
    protocol = load_protocol(protocol_path).protocol
    model_of = {s.id: s.model for s in protocol.subjects}
    expected: dict[str, list[float]] = {}
    seen_as: dict[tuple[str, str, str], float] = {}
    for s in build_stimuli(protocol, pilot=False):
        p = notice_probability(s.system, s.user, *BY_MODEL[model_of[s.cell.subject]])
        observed = p * (1 - JUDGE_ERROR) + (1 - p) * JUDGE_ERROR
        expected.setdefault(s.cell.key, []).append(observed)
        levels = dict(s.cell.levels)
        seen_as[(s.cell.subject, levels["framing"], levels["planted"])] = observed
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

    # the framing effect on detection, per model: the true difference (as the judge sees it)
    # inside each Newcombe interval, again widened over the two subjects
    effects = {}
    for c in analysis["contrasts"]:
        if c["name"] != "deu_effect_on_detection" or c["outcome"] != "detected":
            continue
        t, k = c["treatment"], c["control"]
        truth = (
            seen_as[(c["subject"], "deu", "planted")]
            - seen_as[(c["subject"], "control", "planted")]
        )
        lo, hi = confint_proportions_2indep(
            t["k"], t["n"], k["k"], k["n"], method="newcomb", compare="diff", alpha=0.05 / 2
        )
        assert lo <= truth <= hi, f"{c['subject']}: {truth:.3f} not in [{lo:.3f}, {hi:.3f}]"
        effects[c["subject"]] = c
    assert effects["claude-sonnet"]["lo"] > 0  # the large effect is detected as such
    assert effects["claude-sonnet"]["p_adjusted"] < 0.05 and effects["claude-sonnet"]["rejected"]

    # ... and the framing × model interaction, with its sign, from the pre-registered
    # logistic regression (standard errors clustered by task)
    [model] = analysis["models"]
    assert model["error"] is None and model["clusters"] == len(protocol.materials.tasks)
    assert model["reference"] == {"framing": "control", "subject": "claude-sonnet"}
    term = next(x for x in model["coefficients"] if x["term"] == model["interaction"])
    assert model["interaction"] == "framing[deu]:subject[claude-haiku]"

    def effect(subject: str) -> float:
        return logit(seen_as[(subject, "deu", "planted")]) - logit(
            seen_as[(subject, "control", "planted")]
        )

    truth = effect("claude-haiku") - effect("claude-sonnet")  # -1.92 log-odds
    assert term["coef"] < 0 and term["hi"] < 0, term  # the sign, recovered and significant
    assert term["lo"] <= truth <= term["hi"], (
        f"{truth:.2f} not in [{term['lo']:.2f}, {term['hi']:.2f}]"
    )
