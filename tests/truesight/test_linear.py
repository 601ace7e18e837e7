"""Activation probes: early-stopped activations, fitting, saving, the training CLI and HTTP."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from tests.truesight.workers import REPO, Worker
from truesight import train
from truesight.model import LoadedModel, load_model
from truesight.probes import linear
from truesight.probes.activations import ActRow, hidden_at, n_layers, residuals, resolve_layer
from truesight.probes.batch import ProbeStats, _pad, pad_id
from truesight.probes.cache import weights_fingerprint
from truesight.probes.inputs import ProbeInput, encode

SHORT = "Monday night"
LONG = "The quick brown fox jumps over the lazy dog. " * 12
CONTEXT = "You are a helpful assistant. The user asks a question."
PREFIX = "[Instruction: answer the user.]"
PROBE = "tiny-probe"


@pytest.fixture(scope="module")
def loaded(model_dir: Path) -> LoadedModel:
    return load_model(str(model_dir), device="cpu")


def write_dataset(path: Path, pairs: int = 10) -> Path:
    """A header and `pairs` contrast pairs; every 4th pair is a test pair, odd pairs carry a
    prefix located by meta.statement_char_start, as in instructed_pairs.jsonl."""
    words = ["Monday", "Tuesday", "Friday", "morning", "evening", "today", "tomorrow", "night"]
    lines = [{"header": True, "name": "tiny", "positive": "weekday", "negative": "number"}]
    for i in range(pairs):
        for label, body in ((1, f"{words[i % 8]} and {words[(i + 3) % 8]}"), (0, f"one {i} two")):
            text, meta = body, {}
            if i % 2:
                text, meta = f"{PREFIX} {body}", {"statement_char_start": len(PREFIX) + 1}
            split = "test" if i % 4 == 3 else "train"
            lines.append(
                {"id": f"p{i}-{label}", "pair": f"p{i}", "label": label, "split": split}
                | {"text": text, "meta": meta}
            )
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


# --- activations -----------------------------------------------------------------------------


def test_early_stopped_activations_equal_output_hidden_states(loaded: LoadedModel) -> None:
    seq = loaded.tokenizer(LONG, add_special_tokens=False)["input_ids"]
    ids, mask, positions, _ = _pad([seq], pad_id(loaded), "right", loaded.device)
    with torch.inference_mode():
        reference = loaded.model(ids, output_hidden_states=True).hidden_states
    n = n_layers(loaded)
    assert len(reference) == n + 1 and resolve_layer(loaded, None) == n // 2
    last = loaded.model.get_decoder().layers[-1]
    calls: list[int] = []
    handle = last.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        for layer in range(n + 1):
            calls.clear()
            with torch.inference_mode():
                got = hidden_at(loaded, ids, mask, positions, layer)
            assert torch.allclose(got, reference[layer], atol=1e-5), layer
            # The layers above the one asked for never run.
            assert len(calls) == (1 if layer == n else 0), layer
    finally:
        handle.remove()
    with pytest.raises(ValueError, match="layer must be in"):
        resolve_layer(loaded, n + 1)


def test_batched_activations_equal_single_texts(loaded: LoadedModel) -> None:
    items = [ProbeInput(SHORT), ProbeInput(LONG), ProbeInput(SHORT, CONTEXT)]
    rows = []
    for item in items:
        enc = encode(loaded.tokenizer, item)
        rows.append(ActRow(enc.ids, len(enc.prefix)))
    assert len(rows[1].ids) > 20 * len(rows[0].ids)
    batched = residuals(loaded, rows, 1, ProbeStats(), per_token=True)
    for row, b in zip(rows, batched, strict=True):
        [solo] = residuals(loaded, [row], 1, ProbeStats(), per_token=True)
        assert torch.allclose(b.mean, solo.mean, atol=1e-4)
        assert torch.allclose(b.tokens, solo.tokens, atol=1e-4)
        # The mean is over the text's own tokens only: the context is conditioned on, not read.
        with torch.inference_mode():
            full = loaded.model(torch.tensor([row.ids]), output_hidden_states=True)
        own = full.hidden_states[1][0, row.read_from :]
        assert b.tokens.shape == own.shape
        assert torch.allclose(b.mean, own.mean(dim=0), atol=1e-4)


# --- fitting, saving, loading ----------------------------------------------------------------


def planted(n: int, d: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian activations with the label planted along one random direction."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=d)
    direction /= np.linalg.norm(direction)
    y = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, d)) + np.outer(2 * y - 1, direction) * 3.0 + 5.0
    return x, y


def test_fit_separates_a_planted_direction() -> None:
    x, y = planted(600)
    weights = linear.fit(x[:400], y[:400])
    assert linear.auroc(weights.score(x[400:]), y[400:]) >= 0.99
    # The numpy scorer is the sklearn pipeline's decision function.
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=0))
    pipe.fit(x[:400], y[:400])
    assert np.allclose(weights.score(x[400:]), pipe.decision_function(x[400:]), atol=1e-6)
    assert np.allclose(
        linear.probability(weights.score(x[400:])), pipe.predict_proba(x[400:])[:, 1]
    )


def test_threshold_keeps_false_positives_at_one_percent() -> None:
    control = np.random.default_rng(1).normal(size=500)
    threshold = linear.threshold_at_fpr(control, 0.01)
    assert np.mean(control > threshold) <= 0.01
    assert np.mean(control >= threshold) > 0.01  # and it is the tightest such threshold


def meta(name: str, fingerprint: str, layer: int = 1) -> linear.ProbeMeta:
    return linear.ProbeMeta(
        name=name,
        model=linear.ModelRef(name="tiny", fingerprint=fingerprint),
        layer=layer,
        data_sha256="0" * 64,
        trained_at="2025-01-01T00:00:00+00:00",
        n_train=400,
        n_test=200,
        heldout_auroc=1.0,
        threshold_1pct_fpr=0.5,
        tpr_at_threshold=1.0,
        n_control=100,
        positive_label="pos",
        negative_label="neg",
    )


def test_save_load_round_trip_and_refuse_another_model(tmp_path: Path) -> None:
    x, y = planted(300)
    probe = linear.LinearProbe(meta("planted", "a" * 64), linear.fit(x, y))
    folder = linear.save(probe, tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["probe.json", "weights.npz"]
    back = linear.load(tmp_path, "planted", fingerprint="a" * 64)
    assert np.array_equal(back.weights.score(x), probe.weights.score(x))
    assert back.meta.model_dump(exclude={"weights_sha256"}) == probe.meta.model_dump(
        exclude={"weights_sha256"}
    )
    with pytest.raises(linear.ProbeError, match="trained on another model"):
        linear.load(tmp_path, "planted", fingerprint="b" * 64)
    with pytest.raises(linear.ProbeError, match="available: planted"):
        linear.load(tmp_path, "nope")
    with pytest.raises(linear.ProbeError, match="available: planted"):
        linear.load(tmp_path, "../planted")
    (folder / "weights.npz").write_bytes(b"torn")
    with pytest.raises(linear.ProbeError, match="does not match the sha256"):
        linear.load(tmp_path, "planted")


# --- the training command --------------------------------------------------------------------


def test_training_cli_writes_a_probe(model_dir: Path, tmp_path: Path, capsys) -> None:
    data = write_dataset(tmp_path / "tiny.jsonl")
    argv = [str(data), "--model", str(model_dir), "--device", "cpu"]
    assert train.main([*argv, "--probes-dir", str(tmp_path / "probes")]) == 0
    assert "AUROC" in capsys.readouterr().out
    saved = json.loads((tmp_path / "probes" / "tiny-L1" / "probe.json").read_text())
    assert saved["data_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert saved["layer"] == 1 and saved["n_train"] == 16 and saved["n_test"] == 4
    assert (saved["positive_label"], saved["negative_label"]) == ("weekday", "number")
    assert 0.0 <= saved["heldout_auroc"] <= 1.0 and saved["n_control"] == 2
    # A control file: every text is a negative; --layer and --name are honoured.
    args = ["--layer", "2", "--name", "ctl", "--control", str(data)]
    args += ["--probes-dir", str(tmp_path / "probes")]
    assert train.main([*argv, *args]) == 0
    assert linear.read_meta(tmp_path / "probes", "ctl").n_control == 20


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"header": true}\n{"text": "a", "label": 1, "split": "dev"}\n', "tiny.jsonl:2: field"),
        ("not json\n", "tiny.jsonl:1: not valid JSON"),
        (
            '{"text": "a", "label": 1, "split": "train"}\n{"text": "b", "label": 1, "split": '
            '"train"}\n{"text": "c", "label": 0, "split": "test"}\n',
            "train split needs labels 0 and 1",
        ),
    ],
)
def test_training_cli_rejects_bad_data_in_one_line(tmp_path: Path, content, message) -> None:
    data = tmp_path / "tiny.jsonl"
    data.write_text(content)
    cmd = [sys.executable, "-m", "truesight.train", str(data), "--probes-dir", str(tmp_path)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr and not linear.names(tmp_path)


# --- through the real worker process ---------------------------------------------------------


@pytest.fixture(scope="module")
def served(model_dir: Path, probes_dir: Path, tmp_path_factory) -> linear.LinearProbe:
    """A probe trained on the tiny model, in the session worker's probes folder."""
    data = write_dataset(tmp_path_factory.mktemp("data") / "tiny.jsonl")
    argv = [str(data), "--model", str(model_dir), "--device", "cpu", "--name", PROBE]
    assert train.main([*argv, "--probes-dir", str(probes_dir)]) == 0
    return linear.load(probes_dir, PROBE)


def post(worker: Worker, name: str, body: dict) -> httpx.Response:
    return httpx.post(f"{worker.url}/v1/probes/{name}", json=body, timeout=60)


def test_linear_and_tokens_over_http(
    worker: Worker, served: linear.LinearProbe, loaded: LoadedModel
) -> None:
    body = {"texts": [LONG, SHORT], "contexts": ["", CONTEXT], "params": {"probe": PROBE}}
    resp = post(worker, "linear", body)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [set(r) for r in results] == [
        {"score", "probability", "above_threshold", "probe", "layer"}
    ] * 2
    # The same number as scoring the mean activation in-process.
    enc = encode(loaded.tokenizer, ProbeInput(SHORT, CONTEXT))
    [acts] = residuals(loaded, [ActRow(enc.ids, len(enc.prefix))], 1, ProbeStats())
    assert results[1]["score"] == pytest.approx(
        float(served.weights.score(acts.mean.numpy())), abs=1e-4
    )
    for r in results:
        assert r["probe"] == PROBE and r["layer"] == served.meta.layer == 1
        assert r["probability"] == pytest.approx(float(linear.probability(r["score"])))
        assert r["above_threshold"] == (r["score"] > served.meta.threshold_1pct_fpr)

    tokens = post(worker, "tokens", body).json()["results"]
    spans = tokens[1]["tokens"]
    assert len(spans) == len(enc.text) and tokens[1]["probe"] == PROBE
    assert "".join(s["text"] for s in spans) == SHORT
    for s in spans:
        assert (
            set(s) == {"start", "end", "text", "score"}
            and s["text"] == SHORT[s["start"] : s["end"]]
        )
    # The probe is affine: the mean of the token scores is the score of the mean activation.
    assert np.mean([s["score"] for s in spans]) == pytest.approx(results[1]["score"], abs=1e-4)


def test_trained_probes_are_listed_and_checked(
    worker: Worker, served: linear.LinearProbe, probes_dir: Path, loaded: LoadedModel
) -> None:
    listing = httpx.get(f"{worker.url}/v1/probes", timeout=10).json()
    by_name = {p["name"]: p for p in listing["probes"]}
    assert by_name["linear"]["params"] == by_name["tokens"]["params"] == {"probe": None}
    trained = {p["name"]: p for p in listing["trained_probes"]}
    assert trained[PROBE]["matches_model"] and trained[PROBE]["layer"] == 1

    resp = post(worker, "linear", {"texts": [SHORT], "params": {"probe": "missing"}})
    assert resp.status_code == 400
    message = resp.json()["error"]["message"]
    assert "no trained probe 'missing'" in message and PROBE in message
    assert "params.probe is required" in post(worker, "tokens", {"texts": [SHORT]}).text

    other = linear.LinearProbe(meta("other-model", "f" * 64, layer=1), served.weights)
    linear.save(other, probes_dir)
    resp = post(worker, "tokens", {"texts": [SHORT], "params": {"probe": "other-model"}})
    assert resp.status_code == 400 and "trained on another model" in resp.json()["error"]["message"]
    listing = httpx.get(f"{worker.url}/v1/probes", timeout=10).json()
    assert {p["name"]: p["matches_model"] for p in listing["trained_probes"]}[
        "other-model"
    ] is False
    assert weights_fingerprint(loaded) == served.meta.model.fingerprint


# --- variants, the bag-of-words baseline, training through the worker --------------------------


def test_same_statement_variant_keeps_only_the_instruction_apart() -> None:
    from truesight.probes import dataset

    path = REPO / "protocols" / "data" / "instructed_pairs.jsonl"
    written, same = dataset.load(path), dataset.load(path, variant="same_statement")
    assert same.sha256 == written.sha256 and same.variant == "same_statement"
    by_id = {e.id: e for e in same.examples}
    honest, deceptive = by_id["ip-001-honest"], by_id["ip-001-deceptive"]
    assert (
        honest.text
        == deceptive.text
        == " " + json.loads(path.read_text().splitlines()[1])["meta"]["true_statement"]
    )
    assert "honest person" in honest.context and "deceptive person" in deceptive.context
    assert (honest.label, deceptive.label) == (0, 1)
    # What differs as written (the statement is also false) is gone in this variant.
    assert {e.text for e in written.examples if e.id.startswith("ip-001")} != {honest.text}
    with pytest.raises(dataset.DatasetError, match="needs meta.instruction"):
        performative = REPO / "protocols" / "data" / "sincere_performative.jsonl"
        dataset.load(performative, variant="same_statement")


def test_bag_of_words_baseline_sees_giveaway_words_and_nothing_else() -> None:
    rng = np.random.default_rng(0)
    filler = ["the", "a", "report", "said", "we", "it", "was", "on", "time"]

    def texts(n: int, marker: str | None) -> list[str]:
        out = []
        for _ in range(n):
            words = list(rng.choice(filler, size=8))
            if marker:
                words.insert(int(rng.integers(0, 8)), marker)
            out.append(" ".join(words))
        return out

    y = np.array([1] * 30 + [0] * 30)
    train = texts(30, "truly") + texts(30, None)
    test = texts(30, "truly") + texts(30, None)
    giveaway = linear.bow_auroc(train, y, test, y)
    same = texts(60, None)
    identical = linear.bow_auroc(same, y, same[:30] + same[:30], y)
    assert giveaway > 0.99
    assert identical == pytest.approx(0.5)


def test_worker_trains_a_probe_once_and_serves_it(
    worker: Worker, probes_dir: Path, tmp_path: Path, loaded: LoadedModel
) -> None:
    content = write_dataset(tmp_path / "tiny.jsonl").read_text()
    body = {"name": "via-http", "dataset": content, "source": "tiny.jsonl", "layer": 2}
    resp = httpx.post(f"{worker.url}/v1/trained-probes", json=body, timeout=120)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    meta = out["probe"]
    assert out["trained"] is True and meta["name"] == "via-http" and meta["layer"] == 2
    assert meta["data_sha256"] == hashlib.sha256(content.encode()).hexdigest()
    assert 0.0 <= meta["bow_auroc"] <= 1.0 and meta["variant"] == "as_written"
    assert linear.read_meta(probes_dir, "via-http").weights_sha256 == meta["weights_sha256"]

    again = httpx.post(f"{worker.url}/v1/trained-probes", json=body, timeout=120).json()
    assert again["trained"] is False and again["probe"] == meta  # identical: not retrained
    changed = httpx.post(f"{worker.url}/v1/trained-probes", json=body | {"c": 0.5}, timeout=120)
    assert changed.json()["trained"] is True and changed.json()["probe"]["c"] == 0.5

    scored = post(worker, "linear", {"texts": [SHORT], "params": {"probe": "via-http"}})
    assert scored.status_code == 200 and scored.json()["results"][0]["layer"] == 2

    bad = body | {"dataset": content.replace('"split": "test"', '"split": "dev"', 1)}
    resp = httpx.post(f"{worker.url}/v1/trained-probes", json=bad, timeout=120)
    assert resp.status_code == 400 and "tiny.jsonl:" in resp.json()["error"]["message"]
    for layer in (99, 1.5):
        resp = httpx.post(
            f"{worker.url}/v1/trained-probes", json=body | {"layer": layer}, timeout=120
        )
        assert resp.status_code == 400 and "layer" in resp.json()["error"]["message"]
    # a share of the depth: one protocol suits models of any depth
    share = httpx.post(f"{worker.url}/v1/trained-probes", json=body | {"layer": 0.75}, timeout=120)
    assert share.json()["probe"]["layer"] == int(0.75 * n_layers(loaded))
