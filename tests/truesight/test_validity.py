"""A trained probe's controls, computed by the worker: the same recipe on a random-weight copy of
the model (once, then from its folder) and the probe on a transfer set, checked against sklearn."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline

from tests.fakes.contrast_sets import filler, keyword_set, paired_set
from tests.truesight.workers import Worker
from truesight import train
from truesight.model import LoadedModel, load_model
from truesight.probes import dataset, linear
from truesight.probes.cache import weights_fingerprint
from truesight.validity import random_copy


@pytest.fixture(scope="module")
def loaded(model_dir: Path) -> LoadedModel:
    return load_model(str(model_dir), device="cpu")


def transfer_set(path: Path, pairs: int = 16, seed: int = 3) -> Path:
    """Positives carry one of two weekdays (one of them the training keyword), negatives none:
    a set on which the probe, the bag of words and the control each score something else."""
    rng = random.Random(seed)
    out = []
    for i in range(pairs):
        marked = filler(rng, 5)
        marked.insert(rng.randrange(6), "Friday" if i % 2 else "Monday")
        out.append((" ".join(marked), " ".join(filler(rng, 6))))
    return paired_set(path, out, every_test=1)


def train_probe(worker: Worker, body: dict) -> dict:
    resp = httpx.post(f"{worker.url}/v1/trained-probes", json=body, timeout=120)
    assert resp.status_code == 200, resp.text
    return resp.json()


def request(name: str, data: Path, ood: Path) -> dict:
    return {
        "name": name,
        "dataset": data.read_text(),
        "source": data.name,
        "layer": 1,
        "random_seed": 0,
        "transfer": ood.read_text(),
        "transfer_source": ood.name,
    }


def test_random_weight_copy_is_deterministic_and_leaves_the_rng(loaded: LoadedModel) -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    a, b, other = random_copy(loaded, 0), random_copy(loaded, 0), random_copy(loaded, 1)
    assert torch.equal(torch.rand(3), expected)  # the caller's random stream is untouched
    assert weights_fingerprint(a) == weights_fingerprint(b) != weights_fingerprint(other)
    embed = [m.model.get_input_embeddings().weight for m in (a, other, loaded)]
    assert not torch.equal(embed[1], embed[2])  # fresh weights, not the model's
    # The tiny model is itself initialised from its config after manual_seed(0): the seed-0
    # copy reproduces that init exactly (only its zeroed lm_head rows tell them apart).
    assert torch.equal(embed[0], embed[2])
    assert weights_fingerprint(a) != weights_fingerprint(loaded)
    for key in ("hidden_size", "num_hidden_layers", "vocab_size", "num_attention_heads"):
        assert getattr(a.model.config, key) == getattr(loaded.model.config, key)
    assert a.tokenizer is loaded.tokenizer and "random weights, seed 0" in a.name


def test_worker_computes_the_random_weight_control_once(
    worker: Worker, probes_dir: Path, tmp_path: Path, loaded: LoadedModel
) -> None:
    data, ood = keyword_set(tmp_path / "kw.jsonl"), transfer_set(tmp_path / "ood.jsonl")
    first = train_probe(worker, request("kw-once", data, ood))
    v = first["validity"]
    assert first["trained"] is True and v["computed"] == ["random_weights", "transfer"]
    control = linear.read_meta(probes_dir / "kw-once", "random-0")
    assert control.random_init.seed == 0
    assert control.random_init.of_model.fingerprint == weights_fingerprint(loaded)
    copy = random_copy(loaded, 0)
    assert (
        control.model.fingerprint
        == weights_fingerprint(copy)
        == v["random_weights"]["model_fingerprint"]
    )
    # the same recipe, run here on the same random-weight copy, gives the same figure
    by_hand = train.train(copy, dataset.load(data), layer=1, name="by-hand")
    assert v["random_weights"]["heldout_auroc"] == pytest.approx(by_hand.meta.heldout_auroc)

    again = train_probe(worker, request("kw-once", data, ood))
    assert again["trained"] is False and again["validity"] == v | {"computed": []}
    # another transfer set reuses the control; only the new set is scored
    other = train_probe(worker, request("kw-once", data, transfer_set(tmp_path / "o2", seed=9)))
    assert other["validity"]["computed"] == ["transfer"]
    assert other["validity"]["random_weights"] == v["random_weights"]
    # the control is not a probe the worker serves
    listing = httpx.get(f"{worker.url}/v1/probes", timeout=10).json()
    assert not any(p["name"].startswith("random-") for p in listing["trained_probes"])


def test_transfer_figures_match_a_hand_computation(
    worker: Worker, probes_dir: Path, tmp_path: Path, loaded: LoadedModel
) -> None:
    data, ood = keyword_set(tmp_path / "kw.jsonl"), transfer_set(tmp_path / "ood.jsonl")
    reply = train_probe(worker, request("kw-hand", data, ood))
    t, meta = reply["validity"]["transfer"], reply["probe"]
    examples = dataset.load(ood).examples
    texts, y = [e.text for e in examples], np.array([e.label for e in examples])
    served = httpx.post(
        f"{worker.url}/v1/probes/linear",
        json={"texts": texts, "params": {"probe": "kw-hand"}},
        timeout=60,
    ).json()["results"]
    scores = np.array([r["score"] for r in served])
    assert t["auroc"] == pytest.approx(roc_auc_score(y, scores))
    assert t["threshold"] == meta["threshold_1pct_fpr"]
    assert t["fpr_at_threshold"] == pytest.approx(np.mean(scores[y == 0] > t["threshold"]))
    assert t["tpr_at_threshold"] == pytest.approx(np.mean(scores[y == 1] > t["threshold"]))
    assert (t["n_pos"], t["n_neg"], t["source"]) == (16, 16, "ood.jsonl")

    train_split = dataset.load(data).split("train")
    bow = make_pipeline(
        CountVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b|[^\w\s]"),
        LogisticRegression(max_iter=5000),
    ).fit([e.text for e in train_split], [e.label for e in train_split])
    assert t["bow_auroc"] == pytest.approx(roc_auc_score(y, bow.decision_function(texts)))

    control = linear.load(probes_dir / "kw-hand", "random-0")
    acts = train.mean_activations(random_copy(loaded, 0), examples, 1)
    assert t["random_auroc"] == pytest.approx(roc_auc_score(y, control.weights.score(acts)))


def test_a_transfer_set_needs_both_labels(worker: Worker, tmp_path: Path) -> None:
    data = keyword_set(tmp_path / "kw.jsonl")
    one_sided = tmp_path / "one.jsonl"
    lines = transfer_set(tmp_path / "ood.jsonl").read_text().splitlines()
    one_sided.write_text("\n".join(x for x in lines if '"label": 0' not in x) + "\n")
    body = request("kw-bad", data, one_sided)
    resp = httpx.post(f"{worker.url}/v1/trained-probes", json=body, timeout=120)
    assert resp.status_code == 400
    assert "one.jsonl: a transfer set needs labels 0 and 1" in resp.json()["error"]["message"]
