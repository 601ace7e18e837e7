"""Contrasts pooled across subjects: the subject-fixed-effects estimate with errors clustered by
task, against statsmodels fitted here and the sandwich worked out by hand; the errors in words;
a hypothesis decided on the pooled estimate; what validate refuses; LOG.md and compare."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy.stats import t as student

from orchestrator.analysis import analyze_records
from orchestrator.analysis.result import AnalysisResult, PooledContrast
from orchestrator.compare import Side, compare, to_markdown
from orchestrator.errors import ProtocolError
from orchestrator.nodes.analyze import summary_lines
from orchestrator.nodes.qualitative import render_statistics
from orchestrator.protocol.loader import load_protocol_text
from tests.orchestrator.test_statistics import PROTOCOL, Row, holm, store, wilson

TASKS = 6

CELLS = {
    # subject, framing, planted: (k, n). Subject a reads low and has three times more DEU
    # items; b reads high and has the controls: the plain pooled rates mix base rates in.
    ("a", "deu", "planted"): (15, 30),
    ("a", "control", "planted"): (2, 10),
    ("b", "deu", "planted"): (16, 20),
    ("b", "control", "planted"): (12, 20),
    # false alarms: a small effect in both, so each outcome's family has two pooled tests
    ("a", "deu", "none"): (3, 12),
    ("a", "control", "none"): (2, 12),
    ("b", "deu", "none"): (5, 12),
    ("b", "control", "none"): (4, 12),
}


def rows(cells: dict[tuple[str, str, str], tuple[int, int]], tasks: int = TASKS) -> list[Row]:
    """Item j of a cell is from task j % tasks and positive when j < k (so positives gather in
    the low tasks: outcomes are correlated within a task)."""
    return [
        (subject, framing, planted, f"t{j % tasks}", j < k)
        for (subject, framing, planted), (k, n) in cells.items()
        for j in range(n)
    ]


def analysed(tmp_path: Path, data: list[Row], hypotheses: str = "") -> AnalysisResult:
    text = PROTOCOL
    if hypotheses:
        text = text.replace("design:\n", f"hypotheses:\n{hypotheses}design:\n", 1)
    protocol = load_protocol_text(text, tmp_path / "stats.yaml").protocol
    return analyze_records(protocol, store(tmp_path / "run", data))


def pooled(result: AnalysisResult, name: str, outcome: str = "detected") -> PooledContrast:
    return next(p for p in result.pooled or [] if (p.name, p.outcome) == (name, outcome))


def frame(cells: dict[tuple[str, str, str], tuple[int, int]], planted: str) -> pd.DataFrame:
    data = [r for r in rows(cells) if r[2] == planted]
    return pd.DataFrame(
        {
            "y": [int(r[4] is True) for r in data],
            "arm": [int(r[1] == "deu") for r in data],
            "subject": [r[0] for r in data],
            "task": [r[3] for r in data],
        }
    )


def test_pooled_estimate_is_the_fixed_effects_coefficient_with_task_clustered_errors(
    tmp_path: Path,
) -> None:
    result = analysed(tmp_path, rows(CELLS))
    p = pooled(result, "on_detection")
    assert p.error is None and (p.n, p.tasks, p.df) == (80, TASKS, TASKS - 1)

    # statsmodels, fitted here on the same items
    data = frame(CELLS, "planted")
    fit = smf.ols("y ~ arm + C(subject)", data).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(data["task"])[0]}, use_t=True
    )
    lo, hi = fit.conf_int(alpha=0.05).loc["arm"]
    assert p.estimate == pytest.approx(fit.params["arm"])
    assert p.se == pytest.approx(fit.bse["arm"])
    assert (p.lo, p.hi, p.p) == pytest.approx((lo, hi, fit.pvalues["arm"]))

    # by hand: each subject's own difference weighted by n_t·n_c/n (a: 7.5, b: 10) ...
    diff_a, diff_b = 15 / 30 - 2 / 10, 16 / 20 - 12 / 20
    fixed = (7.5 * diff_a + 10 * diff_b) / 17.5
    assert p.estimate == pytest.approx(fixed)
    assert [(s.subject, s.diff, s.weight) for s in p.subjects] == [
        ("a", pytest.approx(diff_a), pytest.approx(7.5 / 17.5)),
        ("b", pytest.approx(diff_b), pytest.approx(10 / 17.5)),
    ]
    # ... which is not the difference of the plain pooled rates: a's low base rate sits in the
    # treatment arm, b's high one in the control arm
    naive = (15 + 16) / 50 - (2 + 12) / 30
    assert naive == pytest.approx(0.1533, abs=1e-4) and fixed == pytest.approx(0.2429, abs=1e-4)
    assert (p.treatment.k, p.treatment.n, p.control.k, p.control.n) == (31, 50, 14, 30)
    assert (p.treatment.lo, p.treatment.hi) == pytest.approx(wilson(31, 50))
    assert p.treatment.rate - p.control.rate == pytest.approx(naive)

    # the sandwich by hand: V = c·(X'X)⁻¹ (Σ_g X_g'u_g u_g'X_g) (X'X)⁻¹ with Stata's
    # c = G/(G−1)·(N−1)/(N−K); the t interval with G − 1 degrees of freedom
    X = np.column_stack([np.ones(len(data)), data["arm"], data["subject"] == "b"]).astype(float)
    Y = data["y"].to_numpy(float)
    bread = np.linalg.inv(X.T @ X)
    beta = bread @ X.T @ Y
    u = Y - X @ beta
    groups = data["task"].to_numpy()
    meat = sum(
        np.outer(s, s) for s in (X[groups == g].T @ u[groups == g] for g in np.unique(groups))
    )
    n, k = X.shape
    c = TASKS / (TASKS - 1) * (n - 1) / (n - k)
    se = math.sqrt((c * bread @ meat @ bread)[1, 1])
    assert beta[1] == pytest.approx(fixed) and p.se == pytest.approx(se)
    half = student.ppf(0.975, TASKS - 1) * se
    assert (p.lo, p.hi) == pytest.approx((fixed - half, fixed + half))
    assert p.p == pytest.approx(2 * student.sf(fixed / se, TASKS - 1))

    # each outcome's pooled contrasts are one family, corrected apart from the per-subject ones
    alarms = pooled(result, "on_false_alarms")
    assert alarms.error is None
    expected = holm([p.p, alarms.p])
    assert [p.p_adjusted, alarms.p_adjusted] == pytest.approx(expected)
    assert p.rejected is (expected[0] <= 0.05)
    corr = result.pooled_correction
    assert corr is not None and (corr.method, corr.tests) == ("holm", 2)
    assert corr.family == "each outcome's 2 pooled contrasts"
    # every contrast × outcome in the protocol's order, named as the per-subject ones are
    assert [x.label for x in result.pooled or []] == [
        "on_detection",
        "on_detection · complied",
        "on_false_alarms",
        "on_false_alarms · complied",
    ]


def test_what_cannot_be_estimated_is_said_in_words(tmp_path: Path) -> None:
    # complied is false everywhere: a difference of 0 with no variation for its error
    result = analysed(tmp_path / "c", rows(CELLS))
    complied = pooled(result, "on_detection", "complied")
    assert complied.estimate is None and complied.p is None and complied.p_adjusted is None
    assert complied.error == (
        "complied is false in all 80 items of both arms: the difference is 0 with no "
        "variation to estimate its standard error from"
    )
    # two tasks are too few clusters
    result = analysed(tmp_path / "t", rows(CELLS, tasks=2))
    p = pooled(result, "on_detection")
    assert (p.estimate, p.se, p.lo, p.hi, p.p) == (None, None, None, None, None)
    assert p.tasks == 2 and p.n == 80
    assert p.error is not None and p.error.startswith(
        "only 2 tasks among the 80 items: errors clustered by task need at least 3 tasks"
    )
    # the plain rates and each subject's own numbers are still shown
    assert (p.treatment.k, p.treatment.n) == (31, 50) and p.subjects[0].n_treatment == 30
    # no subject with both arms: subject fixed effects leave nothing to compare
    only = {k: v for k, v in CELLS.items() if k[:2] in (("a", "deu"), ("b", "control"))}
    p = pooled(analysed(tmp_path / "o", rows(only)), "on_detection")
    assert p.error is not None and p.error.startswith("no subject has scored items in both arms")
    assert [s.weight for s in p.subjects] == [0.0, 0.0]
    # LOG.md says so, instead of numbers
    lines = summary_lines(analysed(tmp_path / "l", rows(CELLS, tasks=2)))
    [line] = [x for x in lines if x.startswith("- on_detection (pooled")]
    assert line.startswith("- on_detection (pooled over subjects, detected): not estimated (only 2")


def one_subject() -> str:
    """The test protocol with subject a alone (and without its models across subjects)."""
    text = PROTOCOL.replace("  - {id: b, provider: anthropic, model: model-b}\n", "")
    return text.split("  models:\n", 1)[0]


def test_a_one_subject_protocol_pools_nothing(tmp_path: Path) -> None:
    protocol = load_protocol_text(one_subject(), tmp_path / "one.yaml").protocol
    solo = {k: v for k, v in CELLS.items() if k[0] == "a"}
    result = analyze_records(protocol, store(tmp_path / "run", rows(solo)))
    assert result.pooled == [] and result.pooled_correction is None
    assert not [x for x in summary_lines(result) if "pooled" in x]
    assert "pooled" not in render_statistics(result)
    # a file written before pooled contrasts existed still loads
    data = result.model_dump(mode="json")
    del data["pooled"], data["pooled_correction"]
    assert AnalysisResult.model_validate(data).pooled is None


HYPOTHESES = """  - {id: pooled_up, text: DEU raises detection over both subjects.,
     test: {contrast: on_detection, direction: increase, per_subject: pooled}}
  - {id: pooled_big, text: By more than 40 points.,
     test: {contrast: on_detection, direction: increase, margin: 0.40, per_subject: pooled}}
  - {id: pooled_same, text: False alarms change by under 30 points.,
     alpha: 0.10,
     test: {contrast: on_false_alarms, direction: equal, margin: 0.30, per_subject: pooled}}
"""


def test_a_hypothesis_decided_on_the_pooled_estimate(tmp_path: Path) -> None:
    result = analysed(tmp_path, rows(CELLS), HYPOTHESES)
    assert result.decisions is not None
    decided = {h.id: h for h in result.decisions.hypotheses}
    p, alarms = pooled(result, "on_detection"), pooled(result, "on_false_alarms")
    assert p.estimate is not None and p.se is not None and alarms.estimate is not None

    up = decided["pooled_up"]
    [test] = up.tests
    [c] = test.components
    assert (test.kind, test.combine, c.label) == ("contrast", None, "pooled")
    assert test.statistic == "on_detection, pooled over subjects"
    assert "OLS y ~ arm + C(subject), errors clustered by task" in test.method
    # the pooled table's numbers: its estimate, t interval and p
    assert (c.estimate, c.lo, c.hi, c.p) == pytest.approx((p.estimate, p.lo, p.hi, p.p))
    # one family over every estimate of every tested hypothesis
    p_big = 2 * student.sf(abs(p.estimate - 0.40) / p.se, TASKS - 1)
    se_a = alarms.se
    tost = max(
        student.sf((alarms.estimate + 0.30) / se_a, TASKS - 1),
        student.cdf((alarms.estimate - 0.30) / se_a, TASKS - 1),
    )
    adj = holm([p.p, p_big, tost])
    assert c.p_adjusted == pytest.approx(adj[0])
    assert c.lo > 0 and adj[0] < 0.05 and up.decision == "supported"
    assert up.rule.startswith("supported if the 95% interval lies above 0 and adj. p < 0.05")

    # +40 points lies above the whole interval: refuted
    [big] = decided["pooled_big"].tests[0].components
    assert big.p == pytest.approx(p_big) and big.hi < 0.40
    assert decided["pooled_big"].decision == "not_supported"
    assert decided["pooled_big"].reason == "interval lies below +40 points"

    # equivalence at its own alpha: the 90% t interval, TOST p
    [same] = decided["pooled_same"].tests[0].components
    half = student.ppf(0.95, TASKS - 1) * se_a
    assert (same.lo, same.hi) == pytest.approx((alarms.estimate - half, alarms.estimate + half))
    assert same.p == pytest.approx(tost)
    assert -0.30 < same.lo and same.hi < 0.30 and decided["pooled_same"].decision == "supported"

    # too few tasks: no pooled estimate, so the hypothesis is inconclusive and says why
    result = analysed(tmp_path / "two", rows(CELLS, tasks=2), HYPOTHESES)
    assert result.decisions is not None
    h = result.decisions.hypotheses[0]
    assert h.decision == "inconclusive"
    assert h.reason.startswith("no pooled estimate: only 2 tasks among the 80 items")


def test_an_offline_run_with_one_subject_leaves_a_pooled_hypothesis_inconclusive(
    tmp_path: Path,
) -> None:
    """Offline, every subject becomes the one local model (context.as_run): nothing to pool."""
    text = PROTOCOL.replace("design:\n", f"hypotheses:\n{HYPOTHESES}design:\n", 1)
    protocol = load_protocol_text(text, tmp_path / "stats.yaml").protocol
    local = protocol.model_copy(update={"subjects": protocol.subjects[:1]})
    solo = {k: v for k, v in CELLS.items() if k[0] == "a"}
    result = analyze_records(local, store(tmp_path / "run", rows(solo)))
    assert result.pooled == [] and result.decisions is not None
    h = result.decisions.hypotheses[0]
    assert h.decision == "inconclusive"
    assert h.reason == "needs two subjects to pool; this run has 1"


@pytest.mark.parametrize(
    "test,field,fragment",
    [
        (
            "{difference: [on_false_alarms, on_detection], direction: decrease, "
            "per_subject: pooled}",
            "hypotheses[0].test.per_subject",
            "a difference of two contrasts has no pooled estimate here: use per_subject: all or "
            "any, or test the interaction as a model term",
        ),
        (
            "{contrast: on_detection, direction: increase, per_subject: pooled, subjects: [a]}",
            "hypotheses[0].test.subjects",
            "estimates the contrast over every subject of the protocol",
        ),
        (
            "{between_subjects: on_detection, direction: differ, per_subject: pooled}",
            "hypotheses[0].test.per_subject",
            "remove per_subject",
        ),
    ],
    ids=["difference", "subjects", "between subjects"],
)
def test_validate_refuses_what_pooled_cannot_decide(
    tmp_path: Path, test: str, field: str, fragment: str
) -> None:
    text = PROTOCOL.replace(
        "design:\n", f"hypotheses:\n  - id: H\n    text: Pooled.\n    test: {test}\ndesign:\n", 1
    )
    with pytest.raises(ProtocolError) as e:
        load_protocol_text(text, tmp_path / "stats.yaml")
    assert e.value.field == field and fragment in e.value.message, e.value.report()
    assert e.value.line == text[: text.index("    test: ")].count("\n") + 1


def test_a_one_subject_protocol_cannot_pool_its_hypothesis(tmp_path: Path) -> None:
    text = one_subject().replace("design:\n", f"hypotheses:\n{HYPOTHESES}design:\n", 1)
    with pytest.raises(ProtocolError) as e:
        load_protocol_text(text, tmp_path / "one.yaml")
    assert e.value.field == "hypotheses[0].test.per_subject"
    assert "pools the contrast over subjects, and the protocol has 1" in e.value.message


def test_log_lines_analyst_brief_and_compare_show_the_pooled_rows(tmp_path: Path) -> None:
    result = analysed(tmp_path / "a", rows(CELLS))
    p = pooled(result, "on_detection")
    assert p.estimate is not None and p.lo is not None and p.hi is not None
    lines = summary_lines(result)
    expected = (
        f"- on_detection (pooled over subjects, detected): {100 * p.estimate:+.1f} points "
        f"[{100 * p.lo:+.1f}, {100 * p.hi:+.1f}], p={p.p:.3g} (holm: {p.p_adjusted:.3g}); "
        "80 items, 6 tasks, subject fixed effects, SE clustered by task"
    )
    assert expected in lines
    # after the per-subject contrast lines; not for outcomes the contrast is not named for
    first_pooled = lines.index(expected)
    assert all("(a, detected)" not in x for x in lines[first_pooled:])
    assert not [x for x in lines if "pooled over subjects, complied" in x]

    brief = render_statistics(result)
    assert "Contrasts pooled across subjects (treatment minus control" in brief
    assert (
        f"- on_detection, detected: all subjects' deu 31/50 = 0.62 [{p.treatment.lo:.2f}, "
        f"{p.treatment.hi:.2f}] vs control 14/30 = 0.47"
    ) in brief
    assert f"within-subject estimate {p.estimate:+.2f} [{p.lo:+.2f}, {p.hi:+.2f}]" in brief
    assert "- on_false_alarms, complied (the same comparison on an outcome it is not named" in (
        brief
    )

    # compare: the pooled row follows its contrast's subjects, labelled `· pooled`
    other = dict(CELLS)
    other[("a", "deu", "planted")] = (25, 30)
    again = analysed(tmp_path / "b", rows(other))
    side = {
        "run_id": "",
        "protocol_id": "stats",
        "protocol_sha256": "0" * 64,
        "size": "full",
        "models": ["model-a", "model-b"],
        "status": "complete",
    }
    c = compare(
        Side(**{**side, "run_id": "one"}, analysis=result),
        Side(**{**side, "run_id": "two"}, analysis=again),
    )
    table = next(t for t in c.tables if t.title == "Contrasts")
    labels = [row[0] for row in table.rows]
    assert labels == [
        "on_detection (detected) · a",
        "on_detection (detected) · b",
        "on_detection (detected) · pooled",
        "on_false_alarms (detected) · a",
        "on_false_alarms (detected) · b",
        "on_false_alarms (detected) · pooled",
    ]
    q = pooled(again, "on_detection")
    assert q.estimate is not None and q.lo is not None and q.hi is not None
    assert table.rows[2] == [
        "on_detection (detected) · pooled",
        f"{100 * p.estimate:+.1f} [{100 * p.lo:+.1f}, {100 * p.hi:+.1f}]",
        f"{p.p_adjusted:.3g}",
        f"{100 * q.estimate:+.1f} [{100 * q.lo:+.1f}, {100 * q.hi:+.1f}]",
        f"{q.p_adjusted:.3g}",
    ]
    assert "Rows labelled `· pooled`: the contrast pooled over every subject's items" in (
        table.footnote
    )
    assert "| on_detection (detected) · pooled | " in to_markdown(c)
