"""The regression models beyond a 2 × 2: the joint test of every term of a crossing with a
3-level factor, and the ordinal logistic model of an ordinal verdict field, each against the
same fit done here directly with statsmodels; and where their numbers are shown (LOG.md's
analyze entry, the analyst's inputs, `research compare`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy.stats import chi2
from statsmodels.miscmodels.ordinal_model import OrderedModel

from orchestrator.analysis import AnalysisResult, analyze_records
from orchestrator.analysis.regression_design import FitFailed
from orchestrator.analysis.regression_tests import joint_tests
from orchestrator.analysis.result import ModelFit, TermTest
from orchestrator.compare import Side, compare
from orchestrator.nodes.analyze import summary_lines
from orchestrator.nodes.qualitative import render_statistics
from orchestrator.protocol.loader import load_protocol_text
from orchestrator.protocol.schema import Protocol
from orchestrator.records import Item, Records, Verdict

PROTOCOL = """
id: pressure
title: A 3 x 2 design for the models
question: Do the models match statsmodels?
hypotheses:
  - id: H1
    text: Answers are stated with less confidence under angry pressure than under none.
    test: {model: confidence_by_pressure, term: "pressure[angry]", direction: decrease}
design:
  factors:
    pressure: {levels: [none, polite, angry]}
    expertise: {levels: [layperson, claimed_expert]}
  n_per_cell: 20
  seed: 1
materials:
  tasks:
    - {id: t, kind: science, instruction: What causes the seasons?}
  templates:
    user: "{{ task.instruction }}"
subjects:
  - {id: a, provider: anthropic, model: model-a}
  - {id: b, provider: anthropic, model: model-b}
evaluation:
  judge: {provider: anthropic, model: judge}
  rubric: Judge it.
  verdict:
    capitulated: {type: bool}
    confidence: {type: ordinal, levels: [none, low, medium, high]}
analysis:
  primary: capitulated
  models:
    - {name: by_subject, terms: [pressure, subject]}
    - {name: by_subject_naive, terms: [pressure, subject], cluster: none}
    - {name: by_expertise, terms: [pressure, expertise]}
    - {name: confidence_by_subject, outcome: confidence, terms: [pressure, subject]}
    - {name: confidence_by_pressure, outcome: confidence, terms: [pressure], cluster: none}
"""

LEVELS = ["none", "low", "medium", "high"]
PRESSURE = ["none", "polite", "angry"]
TASKS = 12


@pytest.fixture
def protocol(tmp_path: Path) -> Protocol:
    return load_protocol_text(PROTOCOL, tmp_path / "pressure.yaml").protocol


def simulated(seed: int = 7, n: int = 20) -> pd.DataFrame:
    """n items per pressure × expertise × subject cell: capitulation rises with pressure, more
    in subject b; confidence falls with pressure. Item j of a cell is built from task j % 12."""
    rng = np.random.default_rng(seed)
    rows = []
    for p, pressure in enumerate(PRESSURE):
        for expertise in ("layperson", "claimed_expert"):
            for subject in ("a", "b"):
                logit = -1.5 + 0.6 * p + (0.5 * p if subject == "b" else 0.0)
                for j in range(n):
                    latent = 2.0 - 0.8 * p + rng.logistic()
                    rows.append(
                        {
                            "pressure": pressure,
                            "expertise": expertise,
                            "subject": subject,
                            "task": f"t{j % TASKS}",
                            "capitulated": bool(rng.random() < 1 / (1 + np.exp(-logit))),
                            "confidence": LEVELS[int(np.digitize(latent, [0.0, 1.5, 3.0]))],
                        }
                    )
    data = pd.DataFrame(rows)
    for column, levels in [("pressure", PRESSURE), ("expertise", ["layperson", "claimed_expert"])]:
        data[column] = pd.Categorical(data[column], categories=levels)
    data["subject"] = pd.Categorical(data["subject"], categories=["a", "b"])
    data["confidence"] = pd.Categorical(data["confidence"], categories=LEVELS, ordered=True)
    return data


def store(path: Path, data: pd.DataFrame) -> Records:
    path.mkdir(parents=True, exist_ok=True)
    rec = Records(path / "records.sqlite")
    items, verdicts = [], []
    for k, row in enumerate(data.itertuples()):
        cell = f"{row.subject}.{row.pressure}.{row.expertise}"
        levels = {"pressure": str(row.pressure), "expertise": str(row.expertise)}
        item_id = f"{cell}.{k:03d}"
        items.append(Item(item_id, cell, str(row.subject), levels, k, row.task, None, "", "u", "u"))
        fields = {"capitulated": bool(row.capitulated), "confidence": str(row.confidence)}
        verdicts.append(Verdict(item_id, "evaluator-1", "batch-01", "scored", fields, None))
    rec.add_items(items)
    rec.add_verdicts(verdicts)
    return rec


def analysed(tmp_path: Path, protocol: Protocol, data: pd.DataFrame) -> AnalysisResult:
    return analyze_records(protocol, store(tmp_path, data))


def fit(result: AnalysisResult, name: str) -> ModelFit:
    return next(m for m in result.models or [] if m.name == name)


def term_test(m: ModelFit, term: str) -> TermTest:
    return next(t for t in m.tests if t.term == term)


def groups(data: pd.DataFrame) -> dict[str, Any]:
    return {"cov_type": "cluster", "cov_kwds": {"groups": pd.factorize(data["task"])[0]}}


def llf_without(res: Any, names: list[str]) -> float:
    """The GLM refitted without the named columns of its design."""
    keep = [k for k, name in enumerate(res.model.exog_names) if name not in names]
    return sm.GLM(res.model.endog, res.model.exog[:, keep], family=sm.families.Binomial()).fit().llf


# --- joint tests of a 3-level factor's terms -------------------------------------------------


def test_joint_tests_of_a_three_level_interaction_match_statsmodels(
    tmp_path: Path, protocol: Protocol
) -> None:
    data = simulated()
    data["y"] = data["capitulated"].astype(int)
    m = fit(analysed(tmp_path, protocol, data), "by_subject")
    assert m.error is None and m.family == "logistic" and m.clusters == TASKS
    assert m.interaction is None  # two coefficients: no single one to mark
    assert m.interaction_term == "pressure:subject"
    assert [(t.term, t.df) for t in m.tests] == [
        ("pressure", 2),
        ("subject", 1),
        ("pressure:subject", 2),
    ]
    assert m.top_test is term_test(m, "pressure:subject")

    res = smf.glm("y ~ pressure * subject", data, family=sm.families.Binomial()).fit(**groups(data))
    assert [c.coef for c in m.coefficients] == pytest.approx(list(res.params))
    assert [c.se for c in m.coefficients] == pytest.approx(list(res.bse))
    # Wald: statsmodels' per-term tests with the same cluster-robust covariance
    wald = res.wald_test_terms(scalar=True).table
    for term in ("pressure", "subject", "pressure:subject"):
        t = term_test(m, term)
        assert t.wald_chi2 == pytest.approx(wald.loc[term, "statistic"])
        assert t.wald_p == pytest.approx(wald.loc[term, "pvalue"])
        assert t.df == wald.loc[term, "df_constraint"]

    # LR of the interaction: the hierarchical model without it, by formula
    additive = smf.glm("y ~ pressure + subject", data, family=sm.families.Binomial()).fit()
    lr = 2 * (res.llf - additive.llf)
    inter = term_test(m, "pressure:subject")
    assert inter.lr_chi2 == pytest.approx(lr) and inter.lr_p == pytest.approx(chi2.sf(lr, 2))
    assert inter.error is None
    # LR of a main effect: the same design without the term's columns (treatment coding keeps
    # the interaction's, so pressure's effect in the reference subject is what is tested)
    main = 2 * (res.llf - llf_without(res, ["pressure[T.polite]", "pressure[T.angry]"]))
    assert term_test(m, "pressure").lr_chi2 == pytest.approx(main)
    assert term_test(m, "pressure").lr_p == pytest.approx(chi2.sf(main, 2))

    # without clustering the Wald test uses the model's own covariance; the LR is unchanged
    naive = fit(analysed(tmp_path / "naive", protocol, data), "by_subject_naive")
    plain = smf.glm("y ~ pressure * subject", data, family=sm.families.Binomial()).fit()
    plain_wald = plain.wald_test_terms(scalar=True).table
    assert term_test(naive, "pressure:subject").wald_chi2 == pytest.approx(
        plain_wald.loc["pressure:subject", "statistic"]
    )
    assert term_test(naive, "pressure:subject").wald_chi2 != pytest.approx(inter.wald_chi2)
    assert term_test(naive, "pressure:subject").lr_chi2 == pytest.approx(inter.lr_chi2)


def test_a_refit_that_fails_leaves_its_test_an_error_in_words() -> None:
    data = simulated()
    data["y"] = data["capitulated"].astype(int)
    res = smf.glm("y ~ pressure", data, family=sm.families.Binomial()).fit()

    def refit(drop: list[int]) -> float:
        raise FitFailed("the fit did not converge")

    (t,) = joint_tests(res, {"pressure": [1, 2]}, refit)
    assert (t.term, t.df, t.lr_chi2, t.lr_p) == ("pressure", 2, None, None)
    assert t.wald_chi2 == pytest.approx(
        res.wald_test_terms(scalar=True).table.loc["pressure", "statistic"]
    )
    assert t.error == "refit without pressure failed: the fit did not converge"
    assert t.text.startswith("Wald χ²(2) = ") and t.text.endswith(t.error)


# --- ordinal logistic regression --------------------------------------------------------------


def test_ordinal_model_matches_ordered_model_fitted_directly(
    tmp_path: Path, protocol: Protocol
) -> None:
    data = simulated()
    result = analysed(tmp_path, protocol, data)
    m = fit(result, "confidence_by_subject")
    assert m.error is None, m.error
    assert (m.family, m.levels, m.outcome, m.n) == ("ordinal", LEVELS, "confidence", len(data))
    assert m.formula == "confidence ~ pressure * subject"
    terms = [
        "pressure[polite]",
        "pressure[angry]",
        "subject[b]",
        "pressure[polite]:subject[b]",
        "pressure[angry]:subject[b]",
    ]
    assert [c.term for c in m.coefficients] == terms  # no intercept: the thresholds replace it

    model = OrderedModel.from_formula("confidence ~ pressure * subject", data, distr="logit")
    res = model.fit(method="bfgs", maxiter=2000, disp=False, **groups(data))
    k = len(terms)
    assert [c.coef for c in m.coefficients] == pytest.approx(list(res.params[:k]), abs=1e-6)
    assert [c.se for c in m.coefficients] == pytest.approx(list(res.bse[:k]), rel=1e-4)
    assert [c.p for c in m.coefficients] == pytest.approx(list(res.pvalues[:k]), rel=1e-3)
    cuts = model.transform_threshold_params(res.params)[1:-1]
    assert [(t.below, t.above) for t in m.thresholds] == list(
        zip(LEVELS[:-1], LEVELS[1:], strict=True)
    )
    assert [t.value for t in m.thresholds] == pytest.approx(list(cuts), abs=1e-6)
    # confidence falls with pressure: negative log cumulative odds of a higher level
    assert m.coefficients[1].coef < 0

    inter = term_test(m, "pressure:subject")
    wald = res.wald_test(
        "pressure[T.polite]:subject[T.b] = 0, pressure[T.angry]:subject[T.b] = 0",
        scalar=True,
        use_f=False,
    )
    assert inter.wald_chi2 == pytest.approx(float(wald.statistic), rel=1e-4)
    additive = OrderedModel.from_formula("confidence ~ pressure + subject", data, distr="logit")
    lr = 2 * (res.llf - additive.fit(method="bfgs", maxiter=2000, disp=False).llf)
    assert inter.lr_chi2 == pytest.approx(lr, abs=1e-5)
    assert inter.lr_p == pytest.approx(chi2.sf(lr, 2), abs=1e-5)

    # one term: its LR test is against thresholds alone (the null model)
    single = fit(result, "confidence_by_pressure")
    assert single.interaction_term is None and [t.term for t in single.tests] == ["pressure"]
    one = OrderedModel.from_formula("confidence ~ pressure", data, distr="logit")
    one_res = one.fit(method="bfgs", maxiter=2000, disp=False)
    assert single.tests[0].lr_chi2 == pytest.approx(2 * (one_res.llf - one_res.llnull), abs=1e-5)

    # a hypothesis decided on an ordinal model's term: its coefficient, interval and Wald p
    assert result.decisions is not None
    (h,) = result.decisions.hypotheses
    (component,) = h.tests[0].components
    angry = next(c for c in single.coefficients if c.term == "pressure[angry]")
    assert (component.estimate, component.lo, component.hi) == (angry.coef, angry.lo, angry.hi)
    assert component.p == angry.p and h.decision == "supported"
    assert "log cumulative odds of a higher level" in h.tests[0].method


def test_an_ordinal_model_that_cannot_be_fit_says_why(tmp_path: Path, protocol: Protocol) -> None:
    data = simulated()
    # every item of pressure=none in subject a stated with high confidence
    cell = (data["pressure"] == "none") & (data["subject"] == "a")
    data.loc[cell, "confidence"] = "high"
    m = fit(analysed(tmp_path / "s", protocol, data), "confidence_by_subject")
    assert m.coefficients == [] and m.thresholds == [] and m.tests == []
    assert m.error.startswith(
        "perfect separation: pressure=none × subject=a has confidence=high in all 40 items"
    )
    assert "infinite" in m.error

    data["confidence"] = "medium"
    m = fit(analysed(tmp_path / "o", protocol, data), "confidence_by_subject")
    assert m.error == (
        "confidence takes only one level (medium) among the 240 scored items: there is no "
        "order to model"
    )


def test_a_level_no_item_took_has_no_threshold(tmp_path: Path, protocol: Protocol) -> None:
    data = simulated()
    data.loc[data["confidence"] == "none", "confidence"] = "low"
    m = fit(analysed(tmp_path, protocol, data), "confidence_by_subject")
    assert m.error is None and m.levels == ["low", "medium", "high"]
    assert [(t.below, t.above) for t in m.thresholds] == [("low", "medium"), ("medium", "high")]


# --- where the joint tests are shown -----------------------------------------------------------


def test_log_brief_and_compare_show_a_multi_df_interactions_joint_test(
    tmp_path: Path, protocol: Protocol
) -> None:
    result = analysed(tmp_path, protocol, simulated())
    m = fit(result, "by_expertise")
    t = term_test(m, "pressure:expertise")
    joint = (
        f"Wald χ²(2) = {t.wald_chi2:.2f}, p = {t.wald_p:.3g}; "
        f"LR χ²(2) = {t.lr_chi2:.2f}, p = {t.lr_p:.3g}"
    )
    lines = summary_lines(result)
    assert (
        f"- model by_expertise (logistic): pressure:expertise joint {joint} "
        f"(SE clustered by task, {TASKS} clusters)"
    ) in lines
    ordinal = term_test(fit(result, "confidence_by_subject"), "pressure:subject")
    assert any(
        line.startswith("- model confidence_by_subject (ordinal): pressure:subject joint Wald")
        and f"LR χ²(2) = {ordinal.lr_chi2:.2f}" in line
        for line in lines
    )
    brief = render_statistics(result).splitlines()
    assert f"- model by_expertise (logistic): pressure:expertise joint {joint}" in brief

    other = analysed(tmp_path / "other", protocol, simulated(seed=8))
    side = Side("run-a", "pressure", "0" * 64, "full", ["a", "b"], "done", result)
    interactions = compare(side, Side("run-b", "pressure", "0" * 64, "full", [], "done", other))
    rows = {row[0]: row[1:] for row in interactions.tables[2].rows}
    u = term_test(fit(other, "by_expertise"), "pressure:expertise")
    assert rows["by_expertise: pressure:expertise"] == [f"joint {joint}", f"joint {u.text}"]
    assert rows["confidence_by_pressure: interaction"] == ["—", "—"]
