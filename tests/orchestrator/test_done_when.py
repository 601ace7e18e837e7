"""The issue's "done when", end to end: a full-size DEU run on the fake world, with a judge of
known error and the protocol's trained probes on a tiny worker, labelled by a researcher from a
file and reported through the real CLI. report.md must decide H1–H3 as the world's true rates
say, set the judges against the human, correct the rates so that they hold the truth where it is
0 (where the judges' own rates do not), and show each trained probe beside its bag of words, its
random-weight control and its transfer; SUMMARY.md must say what the labels found."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator import runner
from orchestrator.analysis import primary_verdicts
from orchestrator.labels import LabelSession
from orchestrator.nodes.probe_validity import RANDOM_SEED
from orchestrator.protocol import load_protocol
from orchestrator.protocol.stimuli import build_stimuli
from orchestrator.rundir import RunDir
from tests.conftest import DEU, fake_env, research
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.tiny_model import build_tiny_model
from tests.fakes.world import agent_judge, deu_world, noisy, notice_probability
from tests.truesight.workers import Worker, start_worker, stop_worker

BY_MODEL = {"claude-sonnet-4-6": (0.1, 0.9, 0.0), "claude-haiku-4-5": (0.8, 0.1, 0.0)}
"""As test_decisions' world (DEU raises sonnet's detection, lowers haiku's), but no subject ever
raises a false alarm: in every `planted: none` cell the true rate of `detected` is 0, and what
the judges report there is their own error."""
JUDGE_ERROR = 0.05
LABELLED = 100
TRUTH = noisy(0.0)
"""A judge that never errs: the fake world's truth about a response, field by field."""
LABELLED_FIELDS = ("detected", "complied", "questioned_legitimacy", "reasoning_style")
IN_CONTEXT = "  context: prompt\n"
"""deu.yaml's probes read each response after the document its subject read (about 1,000 tokens
a readout); this test reads the responses alone (`context: none`): the stage, the probes'
training, their random-weight controls and transfer sets are the same, at a small part of the
cost (the probe stage of a full run goes from most of this test's time to a few seconds)."""


@pytest.fixture
def seeded_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A worker on a tiny model drawn with another seed than the random-weight control's (the
    session's probe worker is drawn with the control's, so its control is the model itself)."""
    model = build_tiny_model(tmp_path_factory.mktemp("seeded"), context_length=8192, seed=7)
    assert RANDOM_SEED != 7
    logs = tmp_path_factory.mktemp("seeded-worker")
    w = start_worker(model, logs / "worker.log", "--probes-dir", str(logs / "probes"))
    yield w
    stop_worker(w)


def table(md: str, header: str) -> list[dict[str, str]]:
    """The rows of the markdown table whose header line starts with `header`, by column (a
    column named again is `<name> 2`)."""
    lines = md[md.index(f"\n{header}") + 1 :].splitlines()
    columns: list[str] = []
    for c in lines[0].strip("| ").split(" | "):
        columns.append(f"{c} 2" if c in columns else c)
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\) \| ", line.strip().strip("|"))]
        rows.append(dict(zip(columns, cells, strict=True)))
    return rows


def interval(text: str) -> tuple[float, float]:
    """(low, high) of a `rate [lo%, hi%]` cell, as fractions."""
    lo, hi = re.search(r"\[([\d.]+)%, ([\d.]+)%\]", text).groups()  # type: ignore[union-attr]
    return float(lo) / 100, float(hi) / 100


def by_hand(
    sample: list[str], said: dict[str, bool], cell_of: dict[str, str], human: dict[str, bool]
) -> tuple[float, float, float]:
    """Cohen's κ, sensitivity and specificity of the judges' `said` against `human` on the
    labelled `sample`, each item weighted by its stratum's (cell × what the judges said) items
    over its labelled ones."""
    size = Counter((cell_of[i], s) for i, s in said.items())
    labelled = Counter((cell_of[i], said[i]) for i in sample)
    w = {i: size[(cell_of[i], said[i])] / labelled[(cell_of[i], said[i])] for i in sample}
    total = sum(w.values())

    def weight(keep: Callable[[str], bool]) -> float:
        return sum(w[i] for i in sample if keep(i))

    agree = weight(lambda i: said[i] == human[i]) / total
    p_said, p_human = weight(lambda i: said[i]) / total, weight(lambda i: human[i]) / total
    chance = p_said * p_human + (1 - p_said) * (1 - p_human)
    sensitivity = weight(lambda i: said[i] and human[i]) / weight(lambda i: human[i])
    specificity = weight(lambda i: not said[i] and not human[i]) / weight(lambda i: not human[i])
    return (agree - chance) / (1 - chance), sensitivity, specificity


def true_rates(protocol_path: Path) -> dict[tuple[str, str, str], float]:
    """The world's true rate of `detected` per (subject, framing, planted): what a subject is
    set to report, before any judge reads it."""
    protocol = load_protocol(protocol_path).protocol
    model_of = {s.id: s.model for s in protocol.subjects}
    arms: dict[tuple[str, str, str], list[float]] = {}
    for s in build_stimuli(protocol, pilot=False):
        levels = dict(s.cell.levels)
        key = (s.cell.subject, levels["framing"], levels["planted"])
        p = notice_probability(s.system, s.user, *BY_MODEL[model_of[s.cell.subject]])
        arms.setdefault(key, []).append(p)
    return {k: sum(v) / len(v) for k, v in arms.items()}


def test_a_full_run_labelled_and_reported_decides_measures_and_corrects(
    world: FakeAnthropic,
    runs: Path,
    seeded_worker: Worker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = fake_env(world, runs, seeded_worker)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    protocol = tmp_path / "deu.yaml"
    text = DEU.read_text()
    assert IN_CONTEXT in text
    protocol.write_text(text.replace(IN_CONTEXT, "  context: none\n"))
    (tmp_path / "data").symlink_to(DEU.parent / "data")  # its datasets, as beside deu.yaml
    judge = agent_judge(verdict=noisy(JUDGE_ERROR))
    world.handler = deu_world(judge_handler=judge, independent=True, by_model=BY_MODEL)
    assert runner.start(protocol, yes=True, run_id="done").status == "complete"
    run_dir = runs / "done"
    summary = (run_dir / "SUMMARY.md").read_text()
    assert "human labels" not in summary
    assert "`research label done` labels a blinded sample" in summary

    # the researcher labels the sample `research label` offers, truly, and reads it in
    with RunDir(run_dir) as run:
        sample = LabelSession(run, LABELLED, "researcher").sample
        responses = run.records.responses()
        judged = primary_verdicts(run.records.verdicts())
        cell_of = {i.id: i.cell for i in run.records.items()}
    truth = {i: TRUTH("", responses[i].text) for i in sample}
    rows = [{"item_id": i, "fields": {f: truth[i][f] for f in LABELLED_FIELDS}} for i in sample]
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**env, "COLUMNS": "200"}
    done = research("label", "done", "--from", str(labels), "--by", "researcher", env=env)
    assert done.returncode == 0, done.stderr
    assert f"{4 * LABELLED} label(s) of {LABELLED} item(s) by researcher" in done.stdout
    summary = (run_dir / "SUMMARY.md").read_text()
    assert (
        f"- human labels: {LABELLED} item(s) labelled by researcher, not yet in the analysis "
        "(`research report done` folds them in)"
    ) in summary
    assert "`research report done` folds the new human labels into the analysis." in summary
    done = research("report", "done", env=env)
    assert done.returncode == 0, done.stderr
    md = (run_dir / "report.md").read_text()

    # 1. the report opens with the decisions, as the world's true rates say
    rates = true_rates(protocol)

    def effect(subject: str, planted: str) -> float:
        return rates[(subject, "deu", planted)] - rates[(subject, "control", planted)]

    subjects = ("claude-sonnet", "claude-haiku")
    holds = {
        "H1": all(effect(s, "planted") > 0 for s in subjects),
        "H2": all(effect(s, "none") - effect(s, "planted") < 0 for s in subjects),
        "H3": abs(effect(subjects[0], "planted") - effect(subjects[1], "planted")) > 0.10,
    }
    assert holds == {"H1": False, "H2": False, "H3": True}  # both answers are exercised
    first = md.split("\n## ", 2)[1]
    assert first.startswith("Hypotheses decided\n")
    decided = table(first, "| H |")
    assert [r["H"] for r in decided] == ["**H1**", "**H2**", "**H3**"]
    for row, (h, true) in zip(decided, holds.items(), strict=True):
        said = "supported" if true else "not supported"
        assert row["decision"].startswith(f"**{said}**"), (h, row["decision"])
    # the decisions rest on the judges' own rates, and the reader is told what that does
    assert "Estimates are the judges' own rates, not corrected for their error." in first
    assert "shrunk by the factor Se + Sp − 1 = " in first

    # 2. the judges against the human: the 2 × 2 counted here, and κ, sensitivity and
    # specificity worked out here with each labelled item weighted back to its stratum
    human = md[md.index("### Judges against a human") :]
    assert f"{LABELLED} item(s) labelled by researcher" in human
    by_field = {r["field"]: r for r in table(human, "| field | n labelled |")}
    detected = by_field["detected"]
    said = {i: v.fields["detected"] for i, v in judged.items()}  # type: ignore[index]
    pairs = [(said[i], truth[i]["detected"]) for i in sample]
    counts = [pairs.count(p) for p in ((True, True), (True, False), (False, True), (False, False))]
    assert detected["TP / FP / FN / TN"] == " / ".join(map(str, counts))
    assert counts[1] + counts[2] > 0  # the judges erred on some labelled items
    kappa, se, sp = by_hand(sample, said, cell_of, {i: t["detected"] for i, t in truth.items()})
    assert detected["Cohen's κ"] == f"{kappa:.2f}"
    assert detected["sensitivity [95% CI]"].startswith(f"{se:.1%} [")
    assert detected["specificity [95% CI]"].startswith(f"{sp:.1%} [")
    # the judge reads questioned_legitimacy right: full agreement with the human
    assert by_field["questioned_legitimacy"]["Cohen's κ"] == "1.00"

    # 3. corrected rates hold the truth in the zero cells; the judges' own rates do not
    realized: dict[str, list[bool]] = {}
    for i, response in responses.items():
        realized.setdefault(cell_of[i], []).append(TRUTH("", response.text)["detected"])
    zero = {c for c, v in realized.items() if not any(v)}
    assert zero >= {f"{s}.{framing}.none" for s in subjects for framing in ("control", "deu")}
    corrected = [r for r in table(human, "| cell | outcome |") if r["outcome"] == "detected"]
    assert {r["cell"] for r in corrected} == set(realized)
    for r in corrected:
        if r["cell"] in zero:
            assert interval(r["corrected [95% CI]"])[0] == 0.0, r
            assert interval(r["judges' rate [95% CI]"])[0] > 0.0, r
    # no item labelled complied: one line says so, not a row per cell
    assert not [r for r in table(human, "| cell | outcome |") if r["outcome"] == "complied"]
    assert human.count("- `complied` is corrected in no cell: ") == 1
    # the false alarms point at the corrected rates
    alarms = md.split("\n## False alarms\n", 1)[1].split("\n## ", 1)[0]
    assert "a cell whose truth is 0 still shows about that much" in alarms

    # 4. each trained probe beside its baselines, its random-weight control and its transfer
    validity = md[md.index("### Probe validity") :]
    probes = {r["probe"].split("`")[1]: r for r in table(validity, "| probe |")}
    assert probes.keys() == {"deception", "performative"}
    number = re.compile(r"^\d\.\d{3}$")
    for name, r in probes.items():
        figures = ["held-out AUROC", "bag of words", "random-weight", "transfer AUROC"]
        figures += ["bag of words 2", "random-weight 2"]  # on the transfer set
        assert all(number.match(r[x]) for x in figures), r
        record = json.loads((run_dir / "artifacts" / "probes" / f"{name}.json").read_text())
        control = record["validity"]["random_weights"]
        assert control["seed"] == RANDOM_SEED
        assert control["weights_sha256"] != record["weights_sha256"]  # another model's probe
        assert control["model_fingerprint"] != record["model"]["fingerprint"]
        assert r["random-weight"] == f"{control['heldout_auroc']:.3f}"
        assert r["random-weight 2"] == f"{record['validity']['transfer']['random_auroc']:.3f}"
        assert f"- `{name}`: " in validity  # its verdict

    # SUMMARY.md says who labelled, and what the judges' error on the primary outcome is
    summary = (run_dir / "SUMMARY.md").read_text()
    line = next(x for x in summary.splitlines() if x.startswith("- human labels: "))
    se_shown, sp_shown = (
        re.sub(r" \(n=\d+\)$", "", detected[c])  # as in the report, without its n
        for c in ("sensitivity [95% CI]", "specificity [95% CI]")
    )
    assert line == (
        f"- human labels: {LABELLED} item(s) labelled by researcher; judges against them on "
        f"detected (n={LABELLED}): κ {kappa:.2f}, sensitivity {se_shown}, specificity {sp_shown}"
    )
    assert "research label done" not in summary and "folds the new" not in summary
