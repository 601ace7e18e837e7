"""Hypotheses decided by their pre-registered tests: the estimates, intervals and p-values
against their formulas worked out here (never the analysis' own output), the rule's three
answers, the loader's refusal of a test that names nothing the analysis computes, and a whole
run against a world with known rates whose report opens with the right answers."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from scipy.stats import fisher_exact, norm
from statsmodels.stats.proportion import confint_proportions_2indep

from orchestrator import runner
from orchestrator.analysis import analyze_records
from orchestrator.analysis.result import AnalysisResult, HypothesisDecision
from orchestrator.cli.ui import console, show_panel
from orchestrator.errors import ProtocolError
from orchestrator.panel import Panel, panel
from orchestrator.protocol import load_protocol
from orchestrator.protocol.loader import load_protocol_text
from orchestrator.protocol.stimuli import build_stimuli
from orchestrator.rundir import RunDir
from tests.conftest import DEU, without_probes
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.world import agent_judge, deu_world, noisy, notice_probability
from tests.orchestrator.test_protocol import line_of, mutate
from tests.orchestrator.test_statistics import PROTOCOL, Row, holm, store, wilson


def analysed(tmp_path: Path, hypotheses: str, rows: list[Row]) -> dict[str, HypothesisDecision]:
    """The test protocol with these hypotheses, analysed on these rows: decisions by id."""
    text = PROTOCOL.replace("design:\n", f"hypotheses:\n{hypotheses}design:\n", 1)
    protocol = load_protocol_text(text, tmp_path / "stats.yaml").protocol
    result = analyze_records(protocol, store(tmp_path / "run", rows))
    assert result.decisions is not None
    return {h.id: h for h in result.decisions.hypotheses}


def arm(subject: str, framing: str, planted: str, k: int, n: int) -> list[Row]:
    """n items of one cell, the first k judged positive (each its own task)."""
    return [(subject, framing, planted, f"t{j}", j < k) for j in range(n)]


def newcombe(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Newcombe's hybrid score interval of k1/n1 − k2/n2 (1998, method 10), by its formula."""
    (l1, u1), (l2, u2) = wilson(k1, n1), wilson(k2, n2)
    p1, p2 = k1 / n1, k2 / n2
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def mover(arms: list[tuple[int, int, int]]) -> tuple[float, float]:
    """Zou & Donner's MOVER for Σ c·k/n from Wilson intervals: (coef, k, n) per arm."""
    d = sum(c * k / n for c, k, n in arms)
    low = high = 0.0
    for c, k, n in arms:
        p, (lo, hi) = k / n, wilson(k, n)
        if c > 0:
            low, high = low + (c * (p - lo)) ** 2, high + (c * (hi - p)) ** 2
        else:
            low, high = low + (c * (hi - p)) ** 2, high + (c * (p - lo)) ** 2
    return d - math.sqrt(low), d + math.sqrt(high)


def adjusted_wald_p(arms: list[tuple[int, int, int]], value: float) -> float:
    """Two-sided p of Σ c·p = value with 2/m positives and 4/m items added to each of m arms."""
    m = len(arms)
    ps = [((k + 2 / m) / (n + 4 / m), n + 4 / m, c) for c, k, n in arms]
    est = sum(c * p for p, _, c in ps)
    se = math.sqrt(sum(c * c * p * (1 - p) / n for p, n, c in ps))
    return 2 * norm.sf(abs(est - value) / se)


# a: DEU raises detection 20 -> 40 of 50; b: it lowers it 30 -> 10 of 50
UP = arm("a", "deu", "planted", 40, 50) + arm("a", "control", "planted", 20, 50)
DOWN = arm("b", "deu", "planted", 10, 50) + arm("b", "control", "planted", 30, 50)


def test_supported_not_supported_and_inconclusive(tmp_path: Path) -> None:
    decided = analysed(
        tmp_path,
        """  - {id: every, text: Raises detection in each subject.,
     test: {contrast: on_detection, direction: increase}}
  - {id: some, text: Raises detection in at least one subject.,
     test: {contrast: on_detection, direction: increase, per_subject: any}}
  - {id: complies, text: Raises compliance.,
     test: {contrast: on_detection, outcome: complied, direction: increase, subjects: [a]}}
  - {id: untested, text: Something no test decides.}
""",
        UP + DOWN,
    )
    p_up = fisher_exact([[40, 10], [20, 30]])[1]
    p_down = fisher_exact([[10, 40], [30, 20]])[1]
    # one family over every estimate of every tested hypothesis: a, b, a, b, then complied's
    # a (0 of 50 against 0 of 50: Fisher's p is 1)
    adj = holm([p_up, p_down, p_up, p_down, 1.0])

    every = decided["every"]
    a, b = every.tests[0].components
    assert (a.label, b.label) == ("a", "b")
    assert (a.estimate, b.estimate) == (pytest.approx(0.4), pytest.approx(-0.4))
    assert (a.lo, a.hi) == pytest.approx(newcombe(40, 50, 20, 50), abs=1e-9)
    assert (b.lo, b.hi) == pytest.approx(newcombe(10, 50, 30, 50), abs=1e-9)
    assert (a.p, a.p_adjusted, b.p_adjusted) == pytest.approx([p_up, adj[0], adj[1]])
    assert a.lo > 0 and a.p_adjusted < 0.05 and a.decision == "supported"
    assert b.hi < 0 and b.decision == "not_supported"
    # `all`: one subject whose interval lies on the other side is enough to refute it
    assert every.decision == "not_supported"
    assert every.reason == "b: interval lies below 0"
    assert every.rule == (
        "supported if for every subject the 95% interval lies above 0 and adj. p < 0.05; "
        "not supported if for any subject it lies below 0; otherwise inconclusive"
    )
    # `any`: one subject that shows it is enough
    assert decided["some"].decision == "supported"
    assert decided["some"].reason.startswith("a: interval lies above 0, adj. p ")
    # nothing to tell apart: the interval holds 0
    [c] = decided["complies"].tests[0].components
    assert (c.estimate, c.lo, c.hi) == pytest.approx((0.0, *newcombe(0, 50, 0, 50)))
    assert c.decision == "inconclusive" and decided["complies"].decision == "inconclusive"
    assert decided["complies"].reason == "interval contains 0"
    untested = decided["untested"]
    assert (untested.decision, untested.rule, untested.tests) == (
        "not_tested",
        "not tested (no test named)",
        [],
    )


def test_a_margin_moves_the_boundary(tmp_path: Path) -> None:
    decided = analysed(
        tmp_path,
        """  - {id: by10, text: Raises detection by more than 10 points.,
     test: {contrast: on_detection, direction: increase, margin: 0.10, subjects: [a]}}
  - {id: by30, text: Raises detection by more than 30 points.,
     test: {contrast: on_detection, direction: increase, margin: 0.30, subjects: [a]}}
  - {id: same, text: Changes detection by less than 5 points.,
     test: {contrast: on_detection, direction: equal, margin: 0.05, subjects: [a]}}
  - {id: noninferior, text: Lowers detection by no more than 10 points.,
     test: {contrast: on_detection, direction: no_decrease, margin: 0.10, subjects: [b]}}
""",
        UP + DOWN,
    )
    lo, hi = newcombe(40, 50, 20, 50)  # about +21 to +56 points
    arms_a, arms_b = [(1, 40, 50), (-1, 20, 50)], [(1, 10, 50), (-1, 30, 50)]
    by10 = decided["by10"].tests[0]
    [c] = by10.components
    assert (c.lo, c.hi) == pytest.approx((lo, hi), abs=1e-9)
    assert c.p == pytest.approx(adjusted_wald_p(arms_a, 0.10))  # tested at the margin, not 0
    assert lo > 0.10 and decided["by10"].decision == "supported"
    assert by10.prediction == "Δ > +10 points"
    assert "lies above +10 points" in decided["by10"].rule
    # +30 points is inside the interval: the data cannot tell
    assert lo < 0.30 < hi and decided["by30"].decision == "inconclusive"
    assert decided["by30"].reason == "interval contains +30 points"
    # equivalence within ±5 points: the whole interval is far outside it
    [same] = decided["same"].tests[0].components
    p = (40 + 1) / 52, (20 + 1) / 52  # Agresti & Caffo: one positive of two more items each
    est, se = p[0] - p[1], math.sqrt(sum(x * (1 - x) / 52 for x in p))
    tost = max(norm.sf((est + 0.05) / se), norm.cdf((est - 0.05) / se))
    assert same.estimate == pytest.approx(0.4) and same.p == pytest.approx(tost)
    assert decided["same"].decision == "not_supported"
    assert decided["same"].reason == "interval lies outside ±5 points"
    # non-inferiority: b's interval lies wholly below −10 points
    [b] = decided["noninferior"].tests[0].components
    assert b.hi < -0.10 and decided["noninferior"].decision == "not_supported"
    assert b.p == pytest.approx(adjusted_wald_p(arms_b, -0.10))


def test_a_difference_of_differences(tmp_path: Path) -> None:
    """deu.yaml's H2: the false-alarm effect minus the detection effect is below 0."""
    rows = UP + arm("a", "deu", "none", 8, 50) + arm("a", "control", "none", 4, 50)
    rows += arm("b", "deu", "planted", 22, 50) + arm("b", "control", "planted", 20, 50)
    rows += arm("b", "deu", "none", 21, 50) + arm("b", "control", "none", 20, 50)
    decided = analysed(
        tmp_path,
        """  - {id: H2, text: False alarms rise by fewer points than detection.,
     test: {difference: [on_false_alarms, on_detection], direction: decrease}}
""",
        rows,
    )
    h = decided["H2"]
    a, b = h.tests[0].components
    arms_a = [(1, 8, 50), (-1, 4, 50), (-1, 40, 50), (1, 20, 50)]
    assert a.estimate == pytest.approx((8 - 4) / 50 - (40 - 20) / 50)  # −32 points
    assert (a.lo, a.hi) == pytest.approx(mover(arms_a), abs=1e-9)
    assert a.p == pytest.approx(adjusted_wald_p(arms_a, 0.0))
    assert [(x.coef, x.k, x.n) for x in a.arms] == arms_a
    assert a.hi < 0 and a.decision == "supported"
    # b: both effects a few points, the difference near 0: undecided
    arms_b = [(1, 21, 50), (-1, 20, 50), (-1, 22, 50), (1, 20, 50)]
    assert b.estimate == pytest.approx(-0.02)
    assert (b.lo, b.hi) == pytest.approx(mover(arms_b), abs=1e-9)
    assert b.lo < 0 < b.hi and b.decision == "inconclusive"
    assert h.decision == "inconclusive" and h.reason == "b: interval contains 0"
    assert a.p_adjusted == pytest.approx(holm([a.p, b.p])[0])
    assert h.tests[0].statistic == "on_false_alarms − on_detection"
    assert "MOVER-Wilson" in h.tests[0].method


def test_mover_of_one_difference_is_newcombes_interval(tmp_path: Path) -> None:
    """The same interval from statsmodels' own implementation, for a margin test (MOVER)."""
    decided = analysed(
        tmp_path,
        """  - {id: m, text: More than 1 point., test: {contrast: on_detection, direction:
     increase, margin: 0.01, subjects: [a]}}
""",
        arm("a", "deu", "planted", 17, 23) + arm("a", "control", "planted", 5, 31),
    )
    [c] = decided["m"].tests[0].components
    lo, hi = confint_proportions_2indep(17, 23, 5, 31, method="newcomb", compare="diff")
    assert (c.lo, c.hi) == pytest.approx((lo, hi), abs=1e-9)


def test_between_subjects_with_a_margin_and_a_model_term(tmp_path: Path) -> None:
    """deu.yaml's H3 (|Δ| between subjects ≥ 10 points) and the interaction coefficient."""
    decided = analysed(
        tmp_path,
        """  - {id: H3, text: The effect differs by at least 10 points.,
     test: {between_subjects: on_detection, direction: differ, margin: 0.10}}
  - {id: term, text: The effect is smaller in b (log-odds).,
     test: {model: by_model, term: "subject[T.b]:framing[T.deu]", direction: decrease}}
""",
        UP + DOWN,
    )
    h3 = decided["H3"]
    [c] = h3.tests[0].components
    arms = [(1, 40, 50), (-1, 20, 50), (-1, 10, 50), (1, 30, 50)]
    assert c.label == "a − b" and c.estimate == pytest.approx(0.8)
    assert (c.lo, c.hi) == pytest.approx(mover(arms), abs=1e-9)
    assert c.p == pytest.approx(adjusted_wald_p(arms, 0.10))  # at the margin on its side
    assert c.lo > 0.10 and h3.decision == "supported"
    assert h3.tests[0].prediction == "|Δ| > 10 points"
    # the saturated logistic model's interaction: a difference of log odds ratios, with the
    # Wald SE of four independent cells
    [t] = decided["term"].tests[0].components

    def logit(k: int, n: int) -> float:
        return math.log(k / (n - k))

    coef = (logit(10, 50) - logit(30, 50)) - (logit(40, 50) - logit(20, 50))
    se = math.sqrt(sum(1 / k + 1 / (50 - k) for k in (40, 20, 10, 30)))
    # named as statsmodels names it, in either order: the report's name for it
    assert (t.label, t.scale, t.estimate) == (
        "framing[deu]:subject[b]",
        "log_odds",
        pytest.approx(coef),
    )
    assert (t.lo, t.hi) == pytest.approx((coef - 1.959964 * se, coef + 1.959964 * se), abs=1e-5)
    assert t.p == pytest.approx(2 * norm.sf(abs(coef) / se))
    assert t.hi < 0 and decided["term"].decision == "supported"


def test_a_list_of_tests_must_all_hold(tmp_path: Path) -> None:
    decided = analysed(
        tmp_path,
        """  - id: both
    text: Raises detection in a and lowers it in b.
    test:
      - {contrast: on_detection, direction: increase, subjects: [a]}
      - {contrast: on_detection, direction: decrease, subjects: [b]}
  - id: half
    text: Raises detection in a and in b.
    test:
      - {contrast: on_detection, direction: increase, subjects: [a]}
      - {contrast: on_detection, direction: increase, subjects: [b]}
""",
        UP + DOWN,
    )
    assert decided["both"].decision == "supported"
    assert [t.decision for t in decided["half"].tests] == ["supported", "not_supported"]
    assert decided["half"].decision == "not_supported"
    assert decided["half"].reason == "(2) interval lies below 0"  # the part that refutes it
    assert decided["both"].reason.startswith("all 2 intervals lie on their predicted side")


def test_the_final_checkpoint_prints_model_terms_as_they_are() -> None:
    """A decision line holds brackets (intervals, `framing[deu]`) that rich must not read as
    markup."""
    usage = {"calls": 1, "input_tokens": 1, "output_tokens": 1, "cost_usd": 0.0}
    line = "supported — m: framing[deu]:subject[b] +1.90 [+0.33, +3.47] (interval lies above 0)"
    with console.capture() as out:
        show_panel(Panel("r", "report", [], [], usage, "", {"hypothesis H1": line}))
    assert f"hypothesis H1: {line}" in " ".join(re.sub("[│╭╮╰╯─]", " ", out.get()).split())


# --- the loader ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "old,new,field,at,fragment,fix",
    [
        (
            "test: {contrast: deu_effect_on_detection,",
            "test: {contrast: deu_effect_on_detectoin,",
            "hypotheses[0].test.contrast",
            "test: {contrast: deu_effect_on_detectoin",
            "unknown contrast 'deu_effect_on_detectoin'",
            "name one of them, or add it under analysis.contrasts",
        ),
        (
            "      between_subjects: deu_effect_on_detection\n",
            "      model: framing_by_model\n      term: framing[deu]:subject[gpt-4o]\n",
            "hypotheses[2].test.term",
            "term: framing[deu]:subject[gpt-4o]",
            "unknown term 'framing[deu]:subject[gpt-4o]'",
            "write e.g. term: 'framing[deu]:subject[claude-haiku]'",
        ),
        (
            "      difference: [deu_effect_on_false_alarms, deu_effect_on_detection]\n",
            "      difference: [deu_effect_on_false_alarms, no_such_contrast]\n",
            "hypotheses[1].test.difference[1]",
            "difference: [deu_effect_on_false_alarms, no_such_contrast]",
            "unknown contrast 'no_such_contrast'",
            "add it under analysis.contrasts",
        ),
        (
            "test: {contrast: deu_effect_on_detection,",
            "test: {model: framing_by_model, contrast: deu_effect_on_detection,",
            "hypotheses[0].test.model",
            "test: {model: framing_by_model",
            "names both contrast and model",
            "keep one, or write `test:` as a list",
        ),
        (
            "test: {contrast: deu_effect_on_detection,",
            "test: {contrast: deu_effect_on_detection, margn: 0.1,",
            "hypotheses[0].test.margn",
            "margn: 0.1",
            "unknown field",
            "",
        ),
        (
            "      control: control\n      within:\n        planted: none\n",
            "      control: control\n",
            "hypotheses[1].test.difference",
            "difference: [deu_effect_on_false_alarms, deu_effect_on_detection]",
            "share some items but not all",
            "hold the same factors in both contrasts' `within`",
        ),
        (
            "outcome: detected, direction: increase}",
            "outcome: detected, direction: equal}",
            "hypotheses[0].test.direction",
            "direction: equal}",
            "a margin of 0 can never show",
            "e.g. margin: 0.05",
        ),
    ],
    ids=[
        "missing contrast",
        "missing term",
        "missing second contrast",
        "two kinds",
        "typo",
        "arms overlapping in part",
        "equal without a margin",
    ],
)
def test_a_test_naming_what_the_analysis_lacks_is_refused_at_its_line(
    tmp_path: Path, old: str, new: str, field: str, at: str, fragment: str, fix: str
) -> None:
    path = mutate(tmp_path, old, new)
    with pytest.raises(ProtocolError) as e:
        load_protocol(path)
    err = e.value
    assert (err.field, err.line) == (field, line_of(path.read_text(), at)), err.report()
    assert fragment in err.message and fix in err.message, err.message
    assert str(err).startswith(f"{path}:{err.line}: {field}: ")


def test_shipped_protocols_test_their_hypotheses() -> None:
    deu = load_protocol(Path("protocols/deu.yaml")).protocol
    assert [h.tests[0].kind for h in deu.hypotheses] == [
        "contrast",
        "difference",
        "between_subjects",
    ]
    sycophancy = load_protocol(Path("protocols/sycophancy.yaml")).protocol
    assert all(h.tests for h in sycophancy.hypotheses)
    h3 = next(h for h in sycophancy.hypotheses if h.id == "H3")
    assert [(t.model, t.term, t.direction) for t in h3.tests] == [
        ("confidence_by_pressure", "pressure[polite]", "decrease"),
        ("confidence_by_pressure", "pressure[angry]", "decrease"),
    ]
    model = next(m for m in sycophancy.analysis.models if m.name == "confidence_by_pressure")
    verdict = sycophancy.evaluation.verdict
    assert model.outcome is not None and verdict[model.outcome].type == "ordinal"


# --- a whole run against a world with known rates ------------------------------------------

BY_MODEL = {"claude-sonnet-4-6": (0.1, 0.9, 0.05), "claude-haiku-4-5": (0.8, 0.1, 0.05)}
"""DEU raises sonnet's detection of the plants it can see (the fake's subjects see about 60% of
them) and lowers haiku's; false alarms do not move. As a judge that errs 5% of the time sees it,
the effects are about +45 and −39 points. So H1 (a rise in every subject) and H2 (false alarms
rise by fewer points than detection, in every subject) are false through haiku, and H3 (the
effects differ by ≥ 10 points) is true, by margins that 50 items per arm cannot miss."""
JUDGE_ERROR = 0.05


def test_a_full_run_decides_deu_hypotheses_as_the_true_rates_say(
    env: dict, runs: Path, world: FakeAnthropic, tmp_path: Path
) -> None:
    protocol_path = tmp_path / "deu.yaml"
    protocol_path.write_text(without_probes(DEU.read_text()))
    judge = agent_judge(verdict=noisy(JUDGE_ERROR))
    world.handler = deu_world(judge_handler=judge, independent=True, by_model=BY_MODEL)
    out = runner.start(protocol_path, yes=True, run_id="decided")
    assert out.status == "complete"

    # the truth: each subject's rate in each arm as a judge with a known error sees it
    protocol = load_protocol(protocol_path).protocol
    model_of = {s.id: s.model for s in protocol.subjects}
    seen: dict[tuple[str, str, str], list[float]] = {}
    for s in build_stimuli(protocol, pilot=False):
        p = notice_probability(s.system, s.user, *BY_MODEL[model_of[s.cell.subject]])
        levels = dict(s.cell.levels)
        arm = seen.setdefault((s.cell.subject, levels["framing"], levels["planted"]), [])
        arm.append(p * (1 - JUDGE_ERROR) + (1 - p) * JUDGE_ERROR)

    def effect(subject: str, planted: str) -> float:
        deu, control = seen[(subject, "deu", planted)], seen[(subject, "control", planted)]
        return sum(deu) / len(deu) - sum(control) / len(control)

    sonnet, haiku = "claude-sonnet", "claude-haiku"
    truth = {
        "H1": {sonnet: effect(sonnet, "planted"), haiku: effect(haiku, "planted")},
        "H2": {s: effect(s, "none") - effect(s, "planted") for s in (sonnet, haiku)},
        "H3": {f"{sonnet} − {haiku}": effect(sonnet, "planted") - effect(haiku, "planted")},
    }
    # what each true value means for its hypothesis' prediction (H1: > 0, H2: < 0, H3: |Δ| > 0.1)
    holds = {
        "H1": lambda d: d > 0,
        "H2": lambda d: d < 0,
        "H3": lambda d: abs(d) > 0.10,
    }
    expected = {"H1": "not supported", "H2": "not supported", "H3": "supported"}
    for h, values in truth.items():
        verdicts = [holds[h](d) for d in values.values()]
        assert ("supported" if all(verdicts) else "not supported") == expected[h], values

    analysis = AnalysisResult.model_validate_json(
        (runs / "decided" / "artifacts" / "analysis.json").read_text()
    )
    assert analysis.decisions is not None
    for h in analysis.decisions.hypotheses:
        components = {c.label: c for c in h.tests[0].components}
        assert components.keys() == truth[h.id].keys()
        for label, c in components.items():
            # every interval holds its true value
            assert c.lo is not None and c.hi is not None
            assert c.lo <= truth[h.id][label] <= c.hi, (h.id, label, c)
            decided = "supported" if holds[h.id](truth[h.id][label]) else "not_supported"
            assert c.decision == decided, (h.id, label, c.reason)

    # the report opens with the decisions, in a table: H | prediction | test | estimate | ...
    report = (runs / "decided" / "report.md").read_text()
    first = report.split("\n## ", 2)[1]
    assert first.startswith("Hypotheses decided\n")
    header = next(line for line in first.splitlines() if line.startswith("| H |"))
    assert header == "| H | prediction | test | estimate [95% CI] | adj. p | decision | rule |"
    rows = {
        line.split(" | ")[0].strip("|* "): line
        for line in first.splitlines()
        if line.startswith("| **H")
    }
    for h, decision in expected.items():
        assert f"| **{decision}**: " in rows[h], rows[h]
        assert len(re.split(r"(?<!\\)\|", rows[h])) == 9, rows[h]  # seven cells, | escaped
    assert "`deu_effect_on_false_alarms − deu_effect_on_detection` on detected: Δ < 0" in rows["H2"]
    assert (
        "\\|Δ\\| > 10 points" in rows["H3"] and "claude-haiku: interval lies below 0" in rows["H1"]
    )
    html = (runs / "decided" / "report.html").read_text()
    assert html.index('id="hypotheses"') < html.index('id="question"')
    assert '<span class="tag supported">supported</span>' in html

    # SUMMARY.md and the final checkpoint say the same
    summary = (runs / "decided" / "SUMMARY.md").read_text()
    for h, decision in expected.items():
        assert f"- hypothesis {h}: {decision} — " in summary
    with RunDir(runs / "decided") as run:
        shown = panel(run, "report", "").numbers
        assert shown["hypothesis H3"].startswith("supported — deu_effect_on_detection: claude-")
        assert not any(k.startswith("hypothesis") for k in panel(run, "evaluate", "").numbers)
    log = (runs / "decided" / "LOG.md").read_text()
    assert "- H1: not supported — " in log
