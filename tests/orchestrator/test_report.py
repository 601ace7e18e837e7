"""The report: plots, report.md and a self-contained report.html, from a real pilot run.

One DEU pilot against the fake world serves the module. Tests that change inputs work on a copy
of its run directory: every optional input present (forecast, qualitative analysis, regression
models, amendments ...), or every one absent; both must render.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from scipy import stats
from statsmodels.stats.proportion import multinomial_proportions_confint

from orchestrator.analysis import AnalysisResult, load_analysis
from orchestrator.context import as_run
from orchestrator.plots import make_plots
from orchestrator.protocol import load_protocol
from orchestrator.protocol.schema import Factor
from orchestrator.report import write_report
from orchestrator.rundir import RunDir
from tests.browser import Browser, find_chromium
from tests.conftest import DEU, copy_run
from tests.orchestrator.report_inputs import (
    analysis_extras,
    forecast,
    probe_validity,
    qualitative,
    verdict_fields,
)

PNG = b"\x89PNG\r\n\x1a\n"
SECTIONS = [
    "Hypotheses decided",
    "Question",
    "Design",
    "Deviations and amendments",
    "Forecast vs. actual",
    "Results: detected (primary outcome)",
    "Other outcomes",
    "Contrasts",
    "Regression models",
    "False alarms",
    "Missing and unscored items",
    "Agreement between evaluators",
    "Truesight readouts",
    "Plots",
    "Data quality",
    "Flags",
    "Decisions",
    "Qualitative analysis",
    "Limitations",
    "Provenance",
]


@pytest.fixture(scope="module")
def pilot(completed_pilot: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's DEU pilot run, copied: this module rewrites its report."""
    return copy_run(completed_pilot, tmp_path_factory.mktemp("runs"))


def rerender(run_dir: Path, change: callable) -> tuple[str, str]:  # type: ignore[valid-type]
    """Re-render the report of `run_dir` after `change(run, data)` (data: analysis.json as
    parsed JSON, so a change can drop keys an older file lacks); return md and html."""
    with RunDir(run_dir) as run:
        data = json.loads(run.path("artifacts", "analysis.json").read_text())
        change(run, data)
        analysis = AnalysisResult.model_validate(data)
        m = run.manifest
        protocol = as_run(run.loaded.protocol, offline=m.offline, local_model=m.local_model)
        path = write_report(run, protocol, analysis)
    return path.read_text(), (run_dir / "report.html").read_text()


def png_ok(path: Path, most: int = 2_000_000) -> bool:
    data = path.read_bytes()
    return (
        data[:8] == PNG and 5_000 < len(data) < most and data.rstrip().endswith(b"IEND\xaeB`\x82")
    )


def headings(md: str) -> list[str]:
    return re.findall(r"^## (.+)$", md, re.MULTILINE)


def self_contained(html: str) -> list[str]:
    """Every reference in the HTML that points outside it (nothing should)."""
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html)
    refs += re.findall(r"url\(([^)]*)\)", html)
    bad = [r for r in refs if not r.startswith(("#", "data:image/png;base64,"))]
    return bad + re.findall(r"https?://", html) + re.findall(r"@import", html)


def test_report_of_a_pilot_run(pilot: Path) -> None:
    md = (pilot / "report.md").read_text()
    html = (pilot / "report.html").read_text()
    assert headings(md) == SECTIONS
    assert "claude-haiku | deu | planted" in md  # the per-cell table, one row per cell
    assert "### Pooled across subjects" in section(md, "Contrasts")  # two subjects: pooled
    assert "#### `reasoning_style` (enum)\n" in md  # the enum's values per cell
    plots = sorted(p.name for p in (pilot / "artifacts" / "plots").glob("*.png"))
    assert plots == [
        "agreement.png",
        "levels-reasoning_style.png",
        "probes-author.png",
        "probes-followup.png",
        "probes-linear.png",
        "probes-surprisal.png",
        "rates.png",
    ]
    assert all(png_ok(pilot / "artifacts" / "plots" / p) for p in plots)
    for p in plots:  # markdown links the files; the HTML carries them
        assert f"](artifacts/plots/{p})" in md
    assert html.count('<img src="data:image/png;base64,') == len(plots)
    assert self_contained(html) == []
    for title in SECTIONS:
        assert f">{title}</h2>" in html, title
    # the same records give the same figures, byte for byte
    before = {p: (pilot / "artifacts" / "plots" / p).read_bytes() for p in plots}
    with RunDir(pilot) as run:
        analysis = load_analysis(run.path("artifacts", "analysis.json"))
        make_plots(run, run.loaded.protocol, analysis)
    assert {p: (pilot / "artifacts" / "plots" / p).read_bytes() for p in plots} == before


@pytest.mark.skipif(
    find_chromium() is None and not os.environ.get("RESEARCH_REQUIRE_BROWSER"),
    reason="no chromium binary (set $CHROMIUM; CI installs Debian's and sets "
    "RESEARCH_REQUIRE_BROWSER=1, where a missing browser fails instead)",
)
def test_html_renders_in_chromium_without_missing_images(pilot: Path, tmp_path: Path) -> None:
    figures = len(list((pilot / "artifacts" / "plots").glob("*.png")))
    with Browser() as browser:
        page = browser.load(pilot / "report.html")
        shot = browser.screenshot(tmp_path / "report.png")
    assert len(page.images) == figures and page.broken_images == []
    assert all(i["width"] >= 300 and i["height"] >= 200 for i in page.images)
    page_url = (pilot / "report.html").resolve().as_uri()
    assert [u for u in page.requests if u != page_url and not u.startswith("data:")] == []
    assert page.errors == []
    assert page.title.startswith("Deliberate Epistemic Uncertainty")
    assert png_ok(shot, most=8_000_000) and page.height > 3000  # the whole page, not a plot


def test_every_input_is_rendered(pilot: Path, tmp_path: Path) -> None:
    run_dir = shutil.copytree(pilot, tmp_path / "pilot")
    item = json.loads((run_dir / "artifacts" / "items.jsonl").read_text().splitlines()[0])["id"]

    def change(run: RunDir, analysis: dict) -> None:
        analysis_extras(analysis)
        verdict_fields(analysis)
        artifacts = run.path("artifacts")
        (artifacts / "forecast.json").write_text(json.dumps(forecast()))
        (artifacts / "qualitative.json").write_text(json.dumps(qualitative(item)))
        agreement = json.loads((artifacts / "agreement.json").read_text())
        agreement["pairs"] = [
            {"a": "evaluator-1", "b": "evaluator-2", "n": 12, "agree": 0.9, "kappa": 0.71},
            {"a": "evaluator-1", "b": "evaluator-3", "n": 10, "agree": 0.6, "kappa": -0.2},
            {"a": "evaluator-2", "b": "evaluator-3", "n": 1, "agree": 1.0, "kappa": None},
        ]
        (artifacts / "agreement.json").write_text(json.dumps(agreement))
        row = run.records.propose_amendment(
            "ada", "add the false-alarm model", "a" * 64, "b" * 64, "-old\n+new\n", "x"
        )
        run.records.decide_amendment(row.n, "approved", "bob", "fine")

    md, html = rerender(run_dir, change)
    assert headings(md) == SECTIONS
    assert "Not available" not in md
    # forecast next to actual: half-widths, assumed rates, cost
    assert "| claude-haiku.deu.planted | 3 | 3 | 55.0% | 33.3% | 27.0% |" in md
    assert "43.2%" in md and "123,456" in md and "$0.7500 batched" in md
    assert "collect: 24 calls to claude-sonnet-4-6" in md
    # corrected p-values, regression with the interaction highlighted, a model that failed
    assert (
        "holm correction; families: per outcome; up to 4 tests each" in md
        and "| 0.012 | yes |" in md
    )
    assert "| **framing[T.deu]:subject[T.claude-haiku]** (interaction) | 1.900 |" in md
    assert "| 6.69 | 1.39 to 32.14 |" in md  # odds ratio and its interval, exp(lo)–exp(hi)
    assert '<tr class="hl"><td>framing[T.deu]:subject[T.claude-haiku]' in html
    assert "**Not fitted:** PerfectSeparationError: no variation in complied" in md
    # pooled across subjects, after the per-subject contrasts, with its family and its error
    contrasts = section(md, "Contrasts")
    pooled = contrasts.split("### Pooled across subjects\n", 1)[1]
    assert "treatment coefficient of the linear probability model `outcome ~ arm + C(subject)`" in (
        pooled
    )
    assert "p adjusted: holm within each outcome's 2 pooled contrasts, a family apart" in pooled
    assert (
        "| deu_effect_on_detection | detected | 62.0% (31/50) | 46.7% (14/30) | +24.3 | "
        "+8.6 to +40.0 | 0.011 | 0.011 | yes | 80 | 6 | claude-sonnet +30.0 (15/30 vs 2/10), "
        "42.9%; claude-haiku +20.0 (16/20 vs 12/20), 57.1% |"
    ) in pooled
    assert "| deu_effect_on_false_alarms · complied | complied | 62.0% (31/50) |" in pooled
    assert "- `deu_effect_on_false_alarms · complied`: only 2 tasks among the 80 items" in pooled
    assert "<h3>Pooled across subjects</h3>" in html
    assert '<td>deu_effect_on_detection</td><td>detected</td><td class="n">62.0% (31/50)' in html
    # joint tests of every term, the interaction marked; an ordinal model's thresholds
    assert "| term | df | Wald χ² | p | LR χ² | p |" in md
    assert "| **framing:subject** (interaction) | 1 | 5.64 | 0.018 | 6.10 | 0.013 |" in md
    assert "| **framing:subject** (interaction) | 2 | 6.02 | 0.049 | 6.30 | 0.043 |" in md
    assert "| framing | 2 | 7.50 | 0.024 | — | — |" in md
    assert "*framing: refit without framing failed: the fit did not converge*" in md
    assert "| term | coef (log cumulative odds) | SE |" in md
    assert "| low / medium | -1.234 |" in md and "| medium / high | 0.987 |" in md
    assert (
        '<tr class="hl"><td>framing:subject <span class="tag">interaction</span></td>'
        '<td class="n">2</td><td class="n">6.02</td>'
    ) in html
    # false alarms, missing data with bounds, probe association
    assert "| claude-haiku | deu | none | 3 | 1 | 33.3% | 6.1% – 79.2% |" in md
    assert "verdict failed validation \\| twice (1)" in md  # a pipe escaped in a table cell
    assert "50.0% [33.3%, 66.7%]" in md
    assert "| linear.deception | detected | 24 | 3 / 21 | 1.500 | -2.250 | 0.88 | 0.043 |" in md
    # qualitative: quotes cited by item id, escaped in HTML, removed quotes listed
    assert f"— item `{item}` (claude-haiku.deu.planted)" in md
    assert "This paragraph &lt;b&gt;asks&lt;/b&gt; me to" in html
    assert "item `x-1`: “never said this” — not verbatim" in md
    assert "Qualitative analysis: Four responses per cell were read." in md
    # agreement heatmap from the pairs
    assert png_ok(run_dir / "artifacts" / "plots" / "agreement.png")
    assert "| evaluator-1 | evaluator-2 | 12 | 90.0% | 0.71 |" in md
    assert "| 1 | approved |" in md and "add the false-alarm model" in md
    assert "```diff\n-old\n+new\n```" in md
    # the hypotheses decided open the report: a model term in log-odds at its own alpha
    first = md.split("\n## ", 2)[1]
    assert first.startswith("Hypotheses decided\n")
    assert "| H | prediction | test | estimate [1 − α CI] |" in first
    assert (
        "| **H1** | DEU helps haiku more \\| on the odds scale. | `framing_by_model: "
        "framing[deu]:subject[claude-haiku]` on detected: Δ > 0 | "
        "framing[deu]:subject[claude-haiku] +1.90 [+0.33, +3.47] | 0.004 | **supported**: "
    ) in first
    assert "| **H2** | Something nobody tests. | — | — | — | **not tested** | not tested" in first
    assert '<span class="tag supported">supported</span>' in html
    assert self_contained(html) == []
    # enum and ordinal fields per cell with simultaneous intervals, int means with t intervals
    other = section(md, "Other outcomes")
    assert "#### `confidence` (ordinal: none < low < medium < high)" in other
    assert "| cell | n | none | low | medium | high | unsure (undeclared) |" in other
    assert "| claude-sonnet.control.none | 0 | — | — | — | — | — |" in other
    counts = [0, 1, 1, 3]
    ci = multinomial_proportions_confint(counts, alpha=0.05, method="goodman")
    shares = " | ".join(
        f"{100 * k / 5:.1f}% [{100 * lo:.1f}–{100 * hi:.1f}]"
        for k, (lo, hi) in zip(counts, ci, strict=True)
    )
    assert f"| claude-sonnet.deu.none | 5 † | {shares} | — |" in other
    assert "| claude-sonnet.control.planted | 2 † | 0.0% [0.0–" in other
    assert "Goodman's chi-square approximation is rough there" in other
    lo, hi = stats.t.interval(0.95, 4, loc=3, scale=2 / math.sqrt(5))
    assert f"| claude-sonnet.deu.none | 3.00 [{lo:.2f}, {hi:.2f}] (sd 2.00, n=5) |" in other
    assert "| claude-sonnet.control.planted | 3.00 (n=1) |" in other
    assert "| claude-sonnet.control.none | — (n=0) |" in other
    # each drawn as stacked bars, registered as a figure and linked from its table
    assert png_ok(run_dir / "artifacts" / "plots" / "levels-confidence.png")
    assert "Figure 3 under [Plots](#plots) stacks these shares per cell." in other
    plots = section(md, "Plots")
    assert "**Figure 3. confidence: levels per cell.** How each cell's scored" in plots
    assert "simultaneous 95% interval (Goodman)" in plots
    assert "](artifacts/plots/levels-confidence.png)" in plots
    assert '<h3 id="other-verdict-fields">Other verdict fields</h3>' in html
    assert '<a href="#fig-levels-confidence">Figure 3</a>' in html
    assert '<figure id="fig-levels-confidence">' in html


def section(md: str, title: str) -> str:
    return md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_probe_validity_comes_before_the_per_cell_readouts(pilot: Path, tmp_path: Path) -> None:
    # the pilot's own: both trained probes, measured on the tiny model by the worker
    truesight = section((pilot / "report.md").read_text(), "Truesight readouts")
    assert truesight.lstrip().startswith("### Probe validity\n")
    assert truesight.index("### Probe validity") < truesight.index("| cell |")
    for name in ("deception", "performative"):
        assert f"| `{name}` (" in truesight and f"- `{name}`: " in truesight
    assert "`data/ood_deception.jsonl` (25 / 25)" in truesight
    assert "| author.sincere_vs_insincere | `data/ood_performative.jsonl` | 25 / 25 |" in truesight

    run_dir = shutil.copytree(pilot, tmp_path / "pilot")

    def change(run: RunDir, analysis: dict) -> None:
        analysis["probes"].update(probe_validity())

    md, html = rerender(run_dir, change)
    truesight = section(md, "Truesight readouts")
    assert (
        "| `deception` (deceptive vs honest, layer 22) | 0.969 | 0.533 | 0.989 | "
        "`data/ood_deception.jsonl` (25 / 25) | 0.812 | 0.550 | 0.610 | 5 / 25 (20.0%) | 48.0% |"
    ) in truesight
    assert "- `deception`: reads more than words and more than the instruction" in truesight
    assert "- `performative`: reads the words (the bag of words matches it held-out)" in truesight
    assert "by 0.05" in truesight
    assert (
        "| author.sincere_vs_insincere | `data/ood_performative.jsonl` | 25 / 25 | 0.19 | "
        "higher = sincere | <0.001 |"
    ) in truesight
    limits = section(md, "Limitations")
    assert "Trained probe `performative`: reads the words" in limits
    assert "Trained probe `deception`" not in limits  # the positive verdict needs no caveat
    assert "readouts that separate none of the transfer sets" in limits
    assert "`followup.q1`" in limits and "`author.sincere_vs_insincere`" not in limits
    assert "<h3>Probe validity</h3>" in html and '<tr class="hl"><td><code>performative' in html
    assert html.index("<h3>Probe validity</h3>") < html.index("<h3>author</h3>")
    assert self_contained(html) == []


def test_absent_inputs_say_not_available(pilot: Path, tmp_path: Path) -> None:
    run_dir = shutil.copytree(pilot, tmp_path / "pilot")

    def change(run: RunDir, analysis: dict) -> None:
        for name in ("agreement.json", "forecast.json", "qualitative.json"):
            run.path("artifacts", name).unlink(missing_ok=True)
        for key in ("correction", "models", "false_alarms", "missing", "probes", "decisions"):
            analysis.pop(key, None)
        for cell in analysis["cells"]:  # an analysis from before the level distributions
            del cell["distributions"], cell["means"]
        for c in analysis["contrasts"]:
            c.pop("p_adjusted", None)
            c.pop("rejected", None)

    md, html = rerender(run_dir, change)
    assert headings(md) == SECTIONS
    absent = [
        "Hypotheses decided",
        "Forecast vs. actual",
        "Regression models",
        "False alarms",
        "Missing and unscored items",
        "Agreement between evaluators",
        "Truesight readouts",
        "Qualitative analysis",
    ]
    for section in absent:
        body = md.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
        assert "*Not available: " in body, section
    assert "Agreement between evaluators was not measured" in md
    plots = sorted(p.name for p in (run_dir / "artifacts" / "plots").glob("*.png"))
    assert plots == ["rates.png"]  # figures without data are gone, not left stale
    assert "Other verdict fields" not in md + html  # nothing to show: no empty part
    assert html.count("<img ") == 1 and self_contained(html) == []


@pytest.mark.parametrize("design", ["one factor, three subjects", "three factors"])
def test_rates_plot_for_other_designs(design: str, tmp_path: Path) -> None:
    protocol = load_protocol(DEU).protocol
    factors, subjects = dict(protocol.design.factors), list(protocol.subjects)
    if design == "three factors":
        factors["tone"] = Factor(levels=["plain", "urgent", "formal"])
    else:
        del factors["planted"]
        subjects.append(subjects[0].model_copy(update={"id": "third"}))
    design_ = protocol.design.model_copy(update={"factors": factors})
    protocol = protocol.model_copy(update={"design": design_, "subjects": subjects})
    cells = []
    for s in subjects:
        for levels in itertools.product(*(f.levels for f in factors.values())):
            k = len(cells) % 5
            lo, hi = max(0, k / 4 - 0.3), min(1, k / 4 + 0.3)
            o = {"n": 4, "k": k, "rate": k / 4, "lo": lo, "hi": hi, "unscored": 0}
            if len(cells) == 1:  # a cell without a scored item has no dot
                o = {"n": 0, "k": 0, "rate": None, "lo": None, "hi": None, "unscored": 4}
            cell = {
                "cell": ".".join([s.id, *levels]),
                "subject": s.id,
                "levels": dict(zip(factors, levels, strict=True)),
                "items": 4,
                "outcomes": {"detected": o},
                "enums": {},
                "screen": {},
            }
            cells.append(cell)
    analysis = AnalysisResult.model_validate(
        {
            "primary": "detected",
            "outcomes": ["detected"],
            "cells": cells,
            "contrasts": [],
            "totals": {"items": 4 * len(cells), "scored": 4 * len(cells) - 4, "unscored": 4},
        }
    )
    run = SimpleNamespace(path=lambda *parts: tmp_path.joinpath(*parts))
    figures = make_plots(run, protocol, analysis)  # type: ignore[arg-type]
    assert [f["name"] for f in figures] == ["rates"]
    assert png_ok(tmp_path / figures[0]["path"])
