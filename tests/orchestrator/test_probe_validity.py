"""Probe validity: the verdict rule, a probe that only reads a keyword, the zero-shot readouts'
direction, and analysis.json carrying it all (older files still read)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import pytest

from agents.truesight import TruesightClient
from orchestrator.analysis import SCHEMA_VERSION, load_analysis, probe_metrics
from orchestrator.analysis.result import ProbeTransfer
from orchestrator.analysis.validity import (
    MARGIN,
    READS_MORE,
    decide,
    probe_validity,
    readout_transfer,
)
from orchestrator.nodes.probe_read import CONDITIONED
from orchestrator.nodes.probe_validity import read_set, transfer_readouts
from orchestrator.protocol.schema import Probes
from tests.fakes.contrast_sets import keyword_set, unmarked_set
from tests.truesight.workers import Worker
from truesight.probes import dataset


def transfer(auroc: float, bow: float, random: float | None) -> ProbeTransfer:
    return ProbeTransfer(
        set="ood.jsonl",
        n_pos=20,
        n_neg=20,
        auroc=auroc,
        bow_auroc=bow,
        random_auroc=random,
        threshold=1.0,
        false_positives=2,
        fpr=0.1,
        tpr=0.5,
    )


@pytest.mark.parametrize(
    ("t", "expected", "phrases"),
    [
        (transfer(0.80, 0.70, 0.70), (True, True), [READS_MORE]),
        # a margin short of the bag of words: no positive verdict
        (transfer(0.80, 0.76, 0.50), (False, True), ["no more than the words"]),
        (transfer(0.80, 0.50, 0.78), (True, False), ["no better than a random-weight model"]),
        (transfer(0.52, 0.50, 0.50), (False, False), ["does not transfer", "random-weight"]),
        (transfer(0.90, 0.50, None), (True, None), ["no random-weight control"]),
        (None, (None, None), ["not tested out of distribution"]),
    ],
)
def test_the_verdict_needs_both_baselines_beaten_by_the_margin(
    t: ProbeTransfer | None, expected: tuple, phrases: list[str]
) -> None:
    beats_words, beats_random, verdict = decide(0.97, 0.53, t)
    assert (beats_words, beats_random) == expected
    assert verdict.startswith(READS_MORE) == (expected == (True, True))
    for phrase in phrases:
        assert phrase in verdict, verdict
    assert MARGIN == 0.05


def test_a_probe_that_reads_a_keyword_is_told_so(probe_worker: Worker, tmp_path: Path) -> None:
    data = keyword_set(tmp_path / "keyword.jsonl")
    ood = unmarked_set(tmp_path / "no-keyword.jsonl")
    client = TruesightClient(probe_worker.url)
    try:
        reply = client.train(
            "keyword-reader",
            data.read_text(),
            source="keyword.jsonl",
            layer=1,
            transfer=ood.read_text(),
            transfer_source="no-keyword.jsonl",
            random_seed=0,
        )
    finally:
        client.close()
    record = {**reply["probe"], "transfer_set": "data/no-keyword.jsonl"}
    v = probe_validity("keyword", "data/keyword.jsonl", record | {"validity": reply["validity"]})
    assert v.bow_auroc is not None and v.bow_auroc > 0.95  # the keyword gives the label away
    assert v.transfer is not None and v.transfer.set == "data/no-keyword.jsonl"
    assert v.transfer.bow_auroc == pytest.approx(0.5) and v.transfer.auroc == pytest.approx(0.5)
    assert v.random_auroc is not None and v.random_seed == 0
    assert not v.reads_more and v.beats_words is False
    assert "reads the words" in v.verdict and "does not transfer" in v.verdict
    # without the worker's validity block the probe is reported untested, never positive
    untested = probe_validity("keyword", "data/keyword.jsonl", record | {"transfer_set": None})
    assert untested.transfer is None and not untested.reads_more
    assert untested.verdict.startswith("not tested out of distribution")


def test_zero_shot_readouts_get_an_auroc_and_a_direction() -> None:
    labels = ("performative", "sincere")
    higher_sincere = [(1, 0.1), (1, 0.2), (1, 0.3), (0, 0.4), (0, 0.5), (0, float("nan"))]
    r = readout_transfer("author.sincere_vs_insincere", "ood.jsonl", labels, higher_sincere)
    assert (r.auroc, r.direction, r.n_pos, r.n_neg) == (0.0, "higher = sincere", 3, 2)
    flat = readout_transfer("followup.q1", "ood.jsonl", labels, [(1, 1.0), (0, 1.0)])
    assert (flat.auroc, flat.direction) == (0.5, "none")
    one_sided = readout_transfer("followup.q1", "ood.jsonl", labels, [(1, 1.0)])
    assert (one_sided.auroc, one_sided.direction) == (None, "none")


def test_transfer_sets_are_read_as_the_worker_reads_them() -> None:
    path = Path(__file__).parents[2] / "protocols" / "data" / "ood_deception.jsonl"
    labels, rows = read_set(path.read_bytes())
    assert labels == ("deceptive", "honest") and len(rows) == 50
    assert sum(y for *_, y in rows) == 25
    text, context, _ = rows[1]
    assert context.endswith("\nPriya:") and text.startswith(" No idea")
    examples = dataset.load(path).examples
    assert [(e.text, e.context, e.label) for e in examples] == rows


def test_analysis_json_carries_the_validity_and_older_files_still_read(
    completed_pilot: Path, tmp_path: Path
) -> None:
    path = completed_pilot / "artifacts" / "analysis.json"
    a = load_analysis(path)
    assert a.schema_version == SCHEMA_VERSION == 3
    assert a.probes is not None and a.probes.validity is not None
    assert [v.name for v in a.probes.validity] == ["deception", "performative"]
    for v in a.probes.validity:
        assert v.transfer is not None and v.random_auroc is not None and v.verdict
    sets = {r.set for r in a.probes.readout_transfer or []}
    assert sets == {"data/ood_deception.jsonl", "data/ood_performative.jsonl"}
    old = json.loads(path.read_text())
    old["schema_version"] = 1
    for key in ("validity", "readout_transfer"):
        del old["probes"][key]
    (tmp_path / "analysis.json").write_text(json.dumps(old))
    before = load_analysis(tmp_path / "analysis.json")
    assert before.schema_version == 1 and before.probes is not None
    assert before.probes.validity is None and before.probes.readout_transfer is None


def test_a_transfer_set_is_read_once_for_every_zero_shot_probe(probe_worker: Worker) -> None:
    """One request per batch for surprisal, author and followup together, with the same numbers
    as each probe asked alone: surprisal after the set's context, author and followup on the
    text alone."""
    data = Path(__file__).parents[2] / "protocols" / "data"
    spec = Probes.model_validate(
        {
            "run": ["surprisal", "author", "followup", "linear"],
            "batch_size": 8,
            "params": {"followup": {"questions": ["Was the text above written sincerely?"]}},
            "train": {"deception": {"dataset": "x.jsonl", "transfer": "ood_deception.jsonl"}},
        }
    )
    _, rows = read_set((data / "ood_deception.jsonl").read_bytes())
    client = TruesightClient(probe_worker.url)
    try:
        before = httpx.get(f"{probe_worker.url}/health").json()["probe_requests"]
        got = transfer_readouts(spec, lambda rel: (data / rel).read_bytes(), client, CONDITIONED)
        after = httpx.get(f"{probe_worker.url}/health").json()["probe_requests"]
        alone: dict[str, list[tuple[int, float]]] = {}
        for probe in ("surprisal", "author", "followup"):
            contexts = [c for _, c, _ in rows] if probe in CONDITIONED else None
            texts = [x for x, _, _ in rows]
            reply = client.run(probe, texts, contexts, spec.params.get(probe, {}))
            for (_, _, y), result in zip(rows, reply.results, strict=True):
                for metric, v in probe_metrics(probe, result).items():
                    alone.setdefault(metric, []).append((y, v))
    finally:
        client.close()
    assert after - before == math.ceil(len(rows) / 8)
    labels = ("deceptive", "honest")
    expected = [readout_transfer(m, "ood_deception.jsonl", labels, v) for m, v in alone.items()]
    readouts = got["ood_deception.jsonl"]
    assert {r.metric for r in readouts} >= {"surprisal.mean_nll", "followup.q1"}
    assert readouts == expected
