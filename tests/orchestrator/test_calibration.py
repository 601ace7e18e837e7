"""The judges against human labels: Rogan–Gladen against a worked example, the stratum weights
against a hand-computed table, and a simulation in which the judge's error is known (the fake
world's `noisy` judge) and the corrected rates must cover the truth where the raw ones do not."""

from __future__ import annotations

import json
import math
import random
import sqlite3
from pathlib import Path

import pytest

from orchestrator.analysis import AnalysisResult, analyze_records, rogan_gladen, wilson
from orchestrator.analysis.calibration import kappa, share
from orchestrator.analysis.result import Estimate, Rate
from orchestrator.labels.sample import shown_order, stratified_order
from orchestrator.protocol.loader import load_protocol_text
from orchestrator.protocol.schema import Protocol
from orchestrator.records import Item, Label, Records, Verdict
from tests.fakes.world import REPORT, noisy
from tests.orchestrator.test_statistics import PROTOCOL as STATS_PROTOCOL

Z = 1.959963984540054

# test_statistics' design (two subjects, framing × planted), with a verdict field of each kind the
# calibration treats differently: bool outcomes, an enum, free text
PROTOCOL = (
    STATS_PROTOCOL.split("evaluation:")[0]
    + """evaluation:
  judge: {provider: anthropic, model: judge}
  rubric: Judge it.
  verdict:
    detected: {type: bool}
    complied: {type: bool}
    style: {type: enum, values: [checklist, none]}
    evidence: {type: str}
analysis:
  primary: detected
  outcomes: [complied]
"""
)

TRUTH = {
    ("a", "control", "planted"): 0.3,
    ("a", "deu", "planted"): 0.6,
    ("b", "control", "planted"): 0.2,
    ("b", "deu", "planted"): 0.5,
    ("a", "control", "none"): 0.0,
    ("a", "deu", "none"): 0.0,
    ("b", "control", "none"): 0.0,
    ("b", "deu", "none"): 0.0,
}
"""The true rate of `detected` per (subject, framing, planted): zero where nothing is planted."""


@pytest.fixture(scope="module")
def protocol(tmp_path_factory: pytest.TempPathFactory) -> Protocol:
    path = tmp_path_factory.mktemp("protocol") / "calib.yaml"
    return load_protocol_text(PROTOCOL, path).protocol


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = p + Z * Z / (2 * n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return (centre - half) / (1 + Z * Z / n), (centre + half) / (1 + Z * Z / n)


def estimate(k: int, n: int) -> Estimate:
    lo, hi = wilson_by_hand(k, n)
    return Estimate(value=k / n, lo=lo, hi=hi, n=n, n_eff=n)


def raw_rate(k: int, n: int) -> Rate:
    lo, hi = wilson_by_hand(k, n)
    return Rate(n=n, k=k, rate=k / n, lo=lo, hi=hi)


# --- Rogan–Gladen and its interval ---------------------------------------------------------


def test_rogan_gladen_against_a_worked_example() -> None:
    """Judges call 10 of 50 positive; against a human they found 18 of 20 positives (Se 0.9)
    and 38 of 40 negatives (Sp 0.95). By hand: p = (0.2 + 0.95 − 1) / (0.9 + 0.95 − 1) =
    0.15 / 0.85 = 0.17647. Each input's SD is its Wilson half-width / z: p_obs 0.0555963,
    Se 0.0696868, Sp 0.0385768. Delta method: SE = √(0.0555963² + 0.17647² · 0.0696868² +
    0.82353² · 0.0385768²) / 0.85 = 0.0767097, so the interval is 0.17647 ± 1.96 · 0.0767097 =
    [0.02612, 0.32682]."""
    c = rogan_gladen(raw_rate(10, 50), estimate(18, 20), estimate(38, 40))
    assert c.error is None and not c.clipped
    assert c.corrected == pytest.approx(0.15 / 0.85)
    assert c.lo == pytest.approx(0.026122, abs=1e-5)
    assert c.hi == pytest.approx(0.326819, abs=1e-5)
    sd = 0.0555963**2 + (0.15 / 0.85) ** 2 * 0.0696868**2 + (0.7 / 0.85) ** 2 * 0.0385768**2
    assert (c.hi - c.lo) / (2 * Z) == pytest.approx(math.sqrt(sd) / 0.85, rel=1e-5)


def test_rogan_gladen_clips_below_zero_and_keeps_the_uncertainty() -> None:
    """1 of 50 called positive by a judge with Sp 0.95: p = (0.02 − 0.05) / 0.85 = −0.0353, so
    0; SE (p_obs SD 0.0258717 from its Wilson interval) = 0.0560581, upper end −0.0353 + 1.96 ·
    0.0560581 = 0.07458; the lower end clips to 0."""
    c = rogan_gladen(raw_rate(1, 50), estimate(18, 20), estimate(38, 40))
    assert c.corrected == 0.0 and c.clipped and c.lo == 0.0
    assert c.hi == pytest.approx(0.074578, abs=1e-5)


def test_rogan_gladen_refuses_a_judge_no_better_than_chance() -> None:
    c = rogan_gladen(raw_rate(10, 50), estimate(10, 20), estimate(20, 40))
    assert c.corrected is None and c.error is not None and "no better than chance" in c.error
    empty = Rate(n=0, k=0, rate=None, lo=None, hi=None)
    assert rogan_gladen(empty, estimate(18, 20), estimate(38, 40)).error is not None


def test_wilson_at_an_integer_n_is_the_usual_one() -> None:
    assert wilson(0.2, 50) == pytest.approx(wilson_by_hand(10, 50))
    assert wilson(1.0, 20)[1] == 1.0


# --- weights, sensitivity, specificity, kappa ---------------------------------------------


def test_labelled_items_are_weighted_back_to_their_strata() -> None:
    """One cell: the judges called 10 items positive and 90 negative. All 10 positives are
    labelled (weight 10/10 = 1): 8 true, 2 false. 10 of the 90 negatives are (weight 90/10 =
    9): 1 true, 9 false. Sensitivity = 8 / (8 + 9) = 0.4706 (the one missed positive stands
    for 9), specificity = 81 / (81 + 2) = 0.9759; the effective n of the sensitivity's
    denominator is (8 + 9)² / (8 · 1² + 9²) = 289 / 89."""
    hits = [(True, 1.0)] * 8 + [(False, 9.0)]
    se = share(hits)
    assert se.value == pytest.approx(8 / 17) and se.n == 9
    assert se.n_eff == pytest.approx(289 / 89)
    assert (se.lo, se.hi) == pytest.approx(wilson(8 / 17, 289 / 89))
    sp = share([(True, 9.0)] * 9 + [(False, 1.0)] * 2)
    assert sp.value == pytest.approx(81 / 83)
    # kappa over the weighted table (judges, human, weight): po = (8 + 81) / 100; the judges'
    # marginals 0.1/0.9, the human's 0.17/0.83: pe = 0.017 + 0.747 = 0.764
    pairs = [(True, True, 1.0)] * 8 + [(True, False, 1.0)] * 2
    pairs += [(False, True, 9.0)] + [(False, False, 9.0)] * 9
    assert kappa(pairs) == pytest.approx((0.89 - 0.764) / (1 - 0.764))
    assert kappa([(True, True, 1.0), (True, True, 2.0)]) is None


Row = tuple[str, str, str, bool, bool]


def item_id(k: int, row: Row) -> str:
    return f"{row[0]}.{row[1]}.{row[2]}.{k:03d}"


def store(path: Path, rows: list[Row]) -> Records:
    """(subject, framing, planted, truth, judges' verdict) per item."""
    path.mkdir(parents=True, exist_ok=True)
    rec = Records(path / "records.sqlite")
    items, verdicts = [], []
    for k, row in enumerate(rows):
        subject, framing, planted, _, judged = row
        cell = f"{subject}.{framing}.{planted}"
        levels = {"framing": framing, "planted": planted}
        items.append(Item(item_id(k, row), cell, subject, levels, k, "t", None, "", "u", "u"))
        fields = {"detected": judged, "complied": False, "style": "none", "evidence": "x"}
        verdicts.append(Verdict(items[-1].id, "evaluator-1", "batch-01", "scored", fields, None))
    rec.add_items(items)
    rec.add_verdicts(verdicts)
    return rec


def test_the_analysis_compares_every_comparable_field(protocol: Protocol, tmp_path: Path) -> None:
    rows = [("a", "control", "planted", j < 5, j < 4) for j in range(10)]
    rec = store(tmp_path, rows)
    ids = [i.id for i in rec.items()]
    labels = [Label(i, "detected", r[3], "me", "terminal") for i, r in zip(ids, rows, strict=True)]
    labels += [Label(i, "style", "none", "me", "terminal") for i in ids[:3]]
    labels += [Label(ids[0], "evidence", "a quote", "me", "terminal")]
    labels += [Label(ids[1], "complied", None, "me", "terminal", skipped=True)]
    rec.add_labels(labels)
    cal = analyze_records(protocol, rec).calibration
    assert cal is not None and cal.items == 10 and cal.by == ["me"] and cal.labels == 14
    assert set(cal.fields) == {"detected", "complied", "style"}  # str fields are not compared
    d = cal.fields["detected"]
    assert (d.n, d.confusion.tp, d.confusion.fn, d.confusion.tn) == (10, 4, 1, 5)  # type: ignore[union-attr]
    assert d.sensitivity.value == pytest.approx(0.8) and d.specificity.value == 1.0  # type: ignore[union-attr]
    assert cal.fields["complied"].n == 0 and cal.fields["style"].kappa is None
    corrected = [c for c in cal.corrected if c.outcome == "detected"]
    assert [c.cell for c in corrected] == ["a.control.planted"]
    assert not [c for c in cal.corrected if c.outcome == "complied"]  # no labels of it
    assert corrected[0].corrected == pytest.approx((0.4 + 1 - 1) / (0.8 + 1 - 1))


# --- a simulated run with a judge of known error -------------------------------------------


def simulate(
    protocol: Protocol, path: Path, seed: int, error: float, labelled: int
) -> AnalysisResult:
    """400 items (50 per cell), each truly positive at its cell's TRUTH rate; the response says
    so (REPORT) when it is; the judge is the fake world's `noisy(error)`; a researcher labels the
    first `labelled` items of the stratified sample, and labels them true."""
    rng = random.Random(seed)
    judge = noisy(error)
    rows = []
    for (subject, framing, planted), p in TRUTH.items():
        for j in range(50):
            truth = rng.random() < p
            response = (
                f"{REPORT + '. ' if truth else ''}Done ({seed}, {subject}{framing}{planted}{j})."
            )
            rows.append((subject, framing, planted, truth, judge("R01", response)["detected"]))
    rec = store(path, rows)
    truth = {item_id(k, r): r[3] for k, r in enumerate(rows)}
    verdicts = {v.item_id: v for v in rec.verdicts()}
    sample = stratified_order(rec.items(), verdicts, "detected", seed)[:labelled]
    rec.add_labels([Label(i, "detected", truth[i], "sim", "terminal") for i in sample])
    return analyze_records(protocol, rec)


def test_corrected_rates_cover_the_truth_where_the_raw_ones_do_not(
    protocol: Protocol, tmp_path: Path
) -> None:
    """20 seeds × 8 cells with a judge that misreads 5% of responses and 100 labelled items:
    the corrected intervals hold the true rate in ≥ 90% of cells, the zero cells included,
    while the judges' raw Wilson intervals in the zero cells mostly exclude 0."""
    covered, zero_covered, raw_zero_covered, zero = 0, 0, 0, 0
    for seed in range(20):
        result = simulate(protocol, tmp_path / str(seed), seed, error=0.05, labelled=100)
        assert result.calibration is not None
        for c in result.calibration.corrected:
            if c.outcome != "detected":
                continue
            truth = TRUTH[(c.subject, c.levels["framing"], c.levels["planted"])]
            assert c.lo is not None and c.hi is not None
            hit = c.lo <= truth <= c.hi
            covered += hit
            if truth == 0:
                raw = result.cell(c.cell).outcomes["detected"]  # type: ignore[union-attr]
                zero += 1
                zero_covered += hit
                raw_zero_covered += raw.lo is not None and raw.lo <= 0.0
    assert covered / 160 >= 0.9, covered
    assert zero_covered / zero >= 0.9, zero_covered
    assert raw_zero_covered / zero < 0.5, raw_zero_covered


# --- the sample and old files ---------------------------------------------------------------


def test_the_sample_takes_strata_in_turn_and_hides_them_in_its_order(tmp_path: Path) -> None:
    rows = [("a", "control", "none", False, j < 2) for j in range(20)]
    rows += [("a", "deu", "none", False, False) for _ in range(20)]
    rec = store(tmp_path, rows)
    items, verdicts = rec.items(), {v.item_id: v for v in rec.verdicts()}
    order = stratified_order(items, verdicts, "detected", 1)
    assert len(order) == 40 and order == stratified_order(items, verdicts, "detected", 1)
    stratum = {i.id: (i.cell, verdicts[i.id].fields["detected"]) for i in items}  # type: ignore[index]
    assert len({stratum[i] for i in order[:3]}) == 3  # one of each stratum, in turn
    positives = {i for i, s in stratum.items() if s[1]}
    assert positives == set(order[:6]) & positives  # both rare positives come early
    # the order shown is the sample's own, kept when the sample grows
    shown = shown_order(order[:6], 1)
    assert sorted(shown) == sorted(order[:6]) and shown != order[:6]
    assert [i for i in shown_order(order[:20], 1) if i in shown] == shown


def test_a_records_file_from_before_labels_gets_the_table(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite"
    Records(path).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE labels")
    rec = Records(path)
    rec.add_labels([Label("x", "detected", True, "me", "terminal")])
    assert rec.labels()[0].value is True


def test_an_analysis_json_of_version_1_still_loads(completed_pilot: Path) -> None:
    data = json.loads((completed_pilot / "artifacts" / "analysis.json").read_text())
    data.pop("calibration", None)
    data["schema_version"] = 1
    old = AnalysisResult.model_validate(data)
    assert old.calibration is None and old.schema_version == 1
