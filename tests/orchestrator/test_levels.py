"""Enum, ordinal, int and float verdict fields per cell: level shares with simultaneous
multinomial intervals and means with t intervals, against a hand count, Goodman's formula and
scipy worked out here; and an analysis.json written before them still loads."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from scipy import stats
from statsmodels.stats.proportion import multinomial_proportions_confint

from orchestrator.analysis import AnalysisResult, analyze_records
from orchestrator.analysis.levels import distribution, mean
from orchestrator.nodes.qualitative import render_statistics
from orchestrator.protocol.loader import load_protocol_text
from orchestrator.protocol.schema import Protocol, VerdictField
from orchestrator.records import Item, Records, Verdict

PROTOCOL = """
id: levels
title: Verdict fields beyond bool
question: Are the distributions counted right?
design:
  factors:
    framing: {levels: [control, deu]}
  n_per_cell: 6
  seed: 1
materials:
  tasks:
    - {id: t, kind: summarise, instruction: Summarise., document: A document.}
  templates:
    user: "{{ task.instruction }} {{ document }}"
subjects:
  - {id: a, provider: anthropic, model: model-a}
evaluation:
  judge: {provider: anthropic, model: judge}
  rubric: Judge it.
  verdict:
    detected: {type: bool}
    style: {type: enum, values: [checklist, experiential, none]}
    confidence: {type: ordinal, levels: [none, low, medium, high]}
    turns: {type: int, min: 0}
    score: {type: float}
    evidence: {type: str}
analysis:
  primary: detected
"""


@pytest.fixture
def protocol(tmp_path: Path) -> Protocol:
    return load_protocol_text(PROTOCOL, tmp_path / "levels.yaml").protocol


def verdict_fields(style: str, confidence: str, turns: int, score: float) -> dict[str, Any]:
    return {
        "detected": False,
        "style": style,
        "confidence": confidence,
        "turns": turns,
        "score": score,
        "evidence": "",
    }


CONTROL = [
    verdict_fields("checklist", "high", 1, 0.5),
    verdict_fields("checklist", "low", 2, 1.5),
    verdict_fields("none", "high", 4, 2.0),
    verdict_fields("checklist", "medium", 2, -1.0),
    verdict_fields("none", "high", 6, 0.25),
]
"""The control cell's scored verdicts: no item is `experiential` or `none` confident."""
DEU = [verdict_fields("experiential", "low", 3, 1.0)]
"""The deu cell's one scored verdict (its other item is unscored)."""


def store(path: Path) -> Records:
    path.mkdir(parents=True, exist_ok=True)
    rec = Records(path / "records.sqlite")
    items, verdicts = [], []
    rows = [("control", f) for f in CONTROL] + [("deu", f) for f in DEU] + [("deu", None)]
    for k, (framing, fields) in enumerate(rows):
        cell = f"a.{framing}"
        item_id = f"{cell}.{k:03d}"
        items.append(Item(item_id, cell, "a", {"framing": framing}, k, "t", None, "", "u", "u"))
        status, reason = ("scored", None) if fields else ("unscored", "no valid JSON")
        verdicts.append(Verdict(item_id, "evaluator-1", "batch-01", status, fields, reason))
    rec.add_items(items)
    rec.add_verdicts(verdicts)
    return rec


def goodman(counts: list[int], alpha: float = 0.05) -> list[tuple[float, float]]:
    """Goodman (1965): Wilson-type intervals at chi-square(1) quantile 1 − alpha / k."""
    n, k = sum(counts), len(counts)
    a = stats.chi2.ppf(1 - alpha / k, 1)
    out = []
    for c in counts:
        half = math.sqrt(a * (a + 4 * c * (n - c) / n))
        out.append(((a + 2 * c - half) / (2 * (n + a)), (a + 2 * c + half) / (2 * (n + a))))
    return out


def test_enum_shares_and_simultaneous_intervals(tmp_path: Path, protocol: Protocol) -> None:
    result = analyze_records(protocol, store(tmp_path / "r"))
    control = result.cell("a.control")
    assert control is not None
    style = control.distributions["style"]
    assert (style.kind, style.n, style.method) == ("enum", 5, "goodman")
    # the protocol's order, the level nobody took included
    counts = [3, 0, 2]
    assert [(x.level, x.count) for x in style.levels] == list(
        zip(["checklist", "experiential", "none"], counts, strict=True)
    )
    assert [x.share for x in style.levels] == [0.6, 0.0, 0.4]
    expected = goodman(counts)
    library = multinomial_proportions_confint(counts, alpha=0.05, method="goodman")
    for x, (lo, hi), (slo, shi) in zip(style.levels, expected, library, strict=True):
        assert (x.lo, x.hi) == pytest.approx((max(lo, 0.0), min(hi, 1.0)), abs=1e-12)
        assert (x.lo, x.hi) == pytest.approx((slo, shi), abs=1e-12)
    zero = style.levels[1]
    assert zero.lo == 0.0 and 0.4 < zero.hi < 0.6  # a level with no items still has a ceiling
    # 5 items cannot give every level 5: the approximation is marked rough, not withheld
    assert style.approximate and style.note is None
    # the compat tally counts the same
    assert control.enums["style"] == {"checklist": 3, "none": 2}


def test_ordinal_levels_in_their_order(tmp_path: Path, protocol: Protocol) -> None:
    result = analyze_records(protocol, store(tmp_path / "r"))
    control, deu = result.cell("a.control"), result.cell("a.deu")
    assert control is not None and deu is not None
    confidence = control.distributions["confidence"]
    assert confidence.kind == "ordinal"
    # lowest first, as declared; not alphabetical (high, low, medium, none)
    assert [(x.level, x.count) for x in confidence.levels] == [
        ("none", 0),
        ("low", 1),
        ("medium", 1),
        ("high", 3),
    ]
    # one scored item of two: the unscored one is left out of n
    one = deu.distributions["confidence"]
    assert one.n == 1 and [x.count for x in one.levels] == [0, 1, 0, 0]
    got = [end for x in one.levels for end in (x.lo, x.hi)]
    assert got == pytest.approx([end for ci in goodman([0, 1, 0, 0]) for end in ci], abs=1e-12)
    # bool and text fields have no distribution
    assert set(control.distributions) == {"style", "confidence"}


def test_int_and_float_means_with_t_intervals(tmp_path: Path, protocol: Protocol) -> None:
    result = analyze_records(protocol, store(tmp_path / "r"))
    control, deu = result.cell("a.control"), result.cell("a.deu")
    assert control is not None and deu is not None
    assert set(control.means) == {"turns", "score"}
    for name in ("turns", "score"):
        x = [f[name] for f in CONTROL]
        m = sum(x) / len(x)
        sd = math.sqrt(sum((v - m) ** 2 for v in x) / (len(x) - 1))
        lo, hi = stats.t.interval(0.95, len(x) - 1, loc=m, scale=sd / math.sqrt(len(x)))
        got = control.means[name]
        assert got.n == 5
        assert (got.mean, got.sd, got.lo, got.hi) == pytest.approx((m, sd, lo, hi), abs=1e-12)
    # one item: a mean, no spread, no interval
    assert deu.means["turns"].model_dump() == {
        "n": 1,
        "mean": 3.0,
        "sd": None,
        "lo": None,
        "hi": None,
    }


def test_edge_cases_give_a_note_not_a_crash() -> None:
    spec = VerdictField(type="enum", values=["yes", "no"])
    empty = distribution(spec, [])
    assert empty.n == 0 and empty.note == "no scored items" and not empty.approximate
    assert [(x.count, x.share, x.lo, x.hi) for x in empty.levels] == [(0, None, None, None)] * 2
    # a value the protocol does not declare is counted under its own name, after the others
    odd = distribution(spec, ["yes", "maybe", "no", "yes", None])
    assert [(x.level, x.count, x.declared) for x in odd.levels] == [
        ("yes", 2, True),
        ("no", 1, True),
        ("maybe", 1, False),
    ]
    assert odd.n == 4 and all(x.lo is not None for x in odd.levels)
    only = distribution(VerdictField(type="enum", values=["ok"]), ["ok", "ok"])
    assert only.levels[0].share == 1.0 and only.levels[0].lo is None
    assert only.note == "`ok` is the field's only value: its share is 1 by construction"
    # every level at 5 or more: Goodman's approximation holds
    assert not distribution(spec, ["yes"] * 5 + ["no"] * 6).approximate
    assert mean([]).model_dump() == dict.fromkeys(("mean", "sd", "lo", "hi")) | {"n": 0}
    # a constant field: no spread, an interval of zero width
    flat = mean([2, 2, 2])
    assert (flat.mean, flat.sd, flat.lo, flat.hi) == (2.0, 0.0, 2.0, 2.0)
    assert mean([1, math.nan, math.inf, True]).n == 1  # non-finite and bool values left out


def test_an_analysis_json_without_them_still_loads(tmp_path: Path, protocol: Protocol) -> None:
    result = analyze_records(protocol, store(tmp_path / "r"))
    old = json.loads(result.model_dump_json())
    for cell in old["cells"]:
        del cell["distributions"], cell["means"]
    loaded = AnalysisResult.model_validate(old)
    assert all(c.distributions == {} and c.means == {} for c in loaded.cells)
    assert loaded.cell("a.control").enums == {"style": {"checklist": 3, "none": 2}}  # type: ignore[union-attr]


def test_the_analyst_reads_them_one_line_per_cell_and_field(
    tmp_path: Path, protocol: Protocol
) -> None:
    lines = render_statistics(analyze_records(protocol, store(tmp_path / "r"))).splitlines()
    at = lines.index("- a.control: detected 0/5 = 0.00 [0.00, 0.43] (unscored 0)")
    sd = math.sqrt(sum((x - 3) ** 2 for x in [1, 2, 4, 2, 6]) / 4)
    lo, hi = stats.t.interval(0.95, 4, loc=3, scale=sd / math.sqrt(5))
    assert lines[at + 1 : at + 4] == [
        "  - style (enum): checklist 0.60, experiential 0.00, none 0.40 (n=5)",
        "  - confidence (ordinal, lowest first): none 0.00, low 0.20, medium 0.20, high 0.60 (n=5)",
        f"  - turns: mean 3.00, 95% t interval [{lo:.2f}, {hi:.2f}], sd {sd:.2f}, n=5",
    ]
    assert "  - turns: mean 3.00, n=1" in lines  # one item: no spread, no interval
