"""Fused readouts: every probe on a text from one forward pass, equal to the separate probes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.truesight.test_linear import write_dataset
from tests.truesight.workers import Worker
from truesight import train
from truesight.model import LoadedModel, load_model
from truesight.probes import dataset
from truesight.probes.inputs import ProbeInput, encode
from truesight.probes.linear import ProbeStore
from truesight.probes.readouts import Readouts
from truesight.probes.registry import with_trained
from truesight.probes.runner import ProbeRunner
from truesight.probes.wire import ReadoutSpec

LONG = "The quick brown fox jumps over the lazy dog. " * 6
SHORT = "Monday night"
MEDIUM = "One evening the friends met again and talked about tomorrow."
CONTEXT = "You are a helpful assistant. The user asks a question."
AUTHOR = {"pairs": ["sincere_vs_insincere", "calm_vs_anxious"], "suffixes": ["\nBy", "\nIt is"]}
FOLLOWUP = {"questions": ["Is it true?", "Was it kind?"]}


@pytest.fixture(scope="module")
def loaded(model_dir: Path) -> LoadedModel:
    return load_model(str(model_dir), device="cpu")


@pytest.fixture(scope="module")
def store(loaded: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> ProbeStore:
    """Two trained probes at different layers: 1 (a decoder layer) and 2 (the final norm)."""
    root = tmp_path_factory.mktemp("probes")
    path = write_dataset(root / "tiny.jsonl")
    data = dataset.parse(path.read_bytes(), "tiny.jsonl")
    for name, layer in (("mid", 1), ("top", 2)):
        train.ensure(loaded, root, data, name=name, layer=layer)
    return ProbeStore(root)


def specs(author_context: bool = True) -> list[ReadoutSpec]:
    return [
        ReadoutSpec(probe="surprisal", params={"top_k": 3}),
        ReadoutSpec(probe="author", params=AUTHOR, context=author_context),
        ReadoutSpec(probe="followup", params=FOLLOWUP),
        ReadoutSpec(probe="linear", params={"probe": "mid"}, name="linear:mid"),
        ReadoutSpec(probe="linear", params={"probe": "top"}, name="linear:top"),
    ]


def assert_close(fused: object, alone: object, where: str = "") -> None:
    """Equal structure; numbers within float tolerance."""
    if isinstance(alone, dict):
        assert set(fused) == set(alone), where
        for k in alone:
            assert_close(fused[k], alone[k], f"{where}.{k}")
    elif isinstance(alone, list):
        assert len(fused) == len(alone), where
        for k, (a, b) in enumerate(zip(fused, alone, strict=True)):
            assert_close(a, b, f"{where}[{k}]")
    elif isinstance(alone, float):
        assert fused == pytest.approx(alone, abs=1e-4), where
    else:
        assert fused == alone, where


@pytest.mark.parametrize("author_context", [True, False])
def test_fused_readouts_equal_the_separate_probes(
    loaded: LoadedModel, store: ProbeStore, author_context: bool
) -> None:
    registry = with_trained(store)
    items = [ProbeInput(LONG, ""), ProbeInput(SHORT, CONTEXT), ProbeInput(MEDIUM, CONTEXT)]
    fused = Readouts(ProbeRunner(loaded), registry).run(specs(author_context), items)
    runner = ProbeRunner(loaded)
    for spec in specs(author_context):
        mine = items if spec.context else [ProbeInput(i.text) for i in items]
        alone = runner.run(registry[spec.probe], mine, spec.params, use_cache=False)
        for t, result in enumerate(alone):
            assert fused[t][spec.key] == {"result": fused[t][spec.key]["result"], "error": None}
            assert_close(fused[t][spec.key]["result"], result, f"{spec.key} on text {t}")
    # The tokens probe reads the same pass as linear.
    tokens = ReadoutSpec(probe="tokens", params={"probe": "mid"})
    fused_tokens = Readouts(ProbeRunner(loaded), registry).run([tokens], items)
    alone = runner.run(registry["tokens"], items, {"probe": "mid"}, use_cache=False)
    assert_close([r["tokens"]["result"] for r in fused_tokens], alone)
    # Linear probes alone: the pass stops at the highest layer asked for.
    only = [s for s in specs() if s.probe == "linear"][:1]
    fused_mid = Readouts(ProbeRunner(loaded), registry).run(only, items)
    alone = runner.run(registry["linear"], items, {"probe": "mid"}, use_cache=False)
    assert_close([r["linear:mid"]["result"] for r in fused_mid], alone)


class Forwards:
    """Records every call of the decoder's forward: rows, real tokens, and whether it continued
    a KV cache (a suffix pass) or started from nothing (a prefill)."""

    def __init__(self, loaded: LoadedModel):
        self.calls: list[dict] = []
        decoder = loaded.model.get_decoder()
        self.handle = decoder.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, _module: object, _args: tuple, kwargs: dict) -> None:
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        continues = cache is not None and cache.get_seq_length() > 0
        mask = kwargs["attention_mask"]
        real = int(mask[:, -kwargs["input_ids"].shape[1] :].sum())
        self.calls.append({"rows": kwargs["input_ids"].shape[0], "tokens": real, "kv": continues})

    def prefills(self) -> list[dict]:
        return [c for c in self.calls if not c["kv"]]

    def suffix_passes(self) -> list[dict]:
        return [c for c in self.calls if c["kv"]]


def test_one_prefill_per_text_for_five_probes(loaded: LoadedModel, store: ProbeStore) -> None:
    """surprisal + author + followup + two linear probes at different layers: each text runs
    through the model once, then one pass of the suffixes on its cached KV; the author probe's
    calibration text is read once per worker, not once per request."""
    readouts = Readouts(ProbeRunner(loaded), with_trained(store))
    items = [ProbeInput(LONG, ""), ProbeInput(SHORT, CONTEXT), ProbeInput(MEDIUM, CONTEXT)]
    text_tokens = sum(len(encode(loaded.tokenizer, i).ids) for i in items)
    forwards = Forwards(loaded)
    try:
        readouts.run(specs(), items)
        first = list(forwards.calls)
        forwards.calls.clear()
        readouts.run(specs(), [ProbeInput(SHORT + " again", CONTEXT)])
        second = list(forwards.calls)
    finally:
        forwards.handle.remove()
    prefills = [c for c in first if not c["kv"]]
    # One batched prefill of the three texts, one of the calibration text ("N/A").
    null = len(encode(loaded.tokenizer, ProbeInput("N/A")).ids)
    assert sorted(c["rows"] for c in prefills) == [1, 3]
    assert sum(c["tokens"] for c in prefills) == text_tokens + null
    # Suffix passes: 2 author suffixes + 2 questions on the texts' KV, 2 suffixes on the null's.
    suffixes = [c for c in first if c["kv"]]
    assert sorted(c["rows"] for c in suffixes) == [2, 3 * 4]
    assert len(first) == 4
    # The calibration is remembered: a new text costs its own prefill and suffix pass only.
    assert [(c["rows"], c["kv"]) for c in second] == [(1, False), (4, True)]
    assert second[0]["tokens"] == len(
        encode(loaded.tokenizer, ProbeInput(SHORT + " again", CONTEXT)).ids
    )


def test_separate_probes_read_each_text_many_times(loaded: LoadedModel, store: ProbeStore) -> None:
    """The single-probe path, for contrast: the same readouts cost a prefill per probe."""
    registry, runner = with_trained(store), ProbeRunner(loaded)
    items = [ProbeInput(SHORT, CONTEXT)]
    forwards = Forwards(loaded)
    try:
        for spec in specs():
            runner.run(registry[spec.probe], items, spec.params, use_cache=False)
    finally:
        forwards.handle.remove()
    assert (
        len(forwards.prefills()) == 5
    )  # surprisal, author (text + null together), followup, 2 linear


# --- through the real worker process ---------------------------------------------------------


def health(worker: Worker) -> dict:
    return httpx.get(f"{worker.url}/health", timeout=10).json()


def test_readouts_over_http_use_the_cache_and_report_per_text_errors(
    worker: Worker, probes_dir: Path, loaded: LoadedModel, tmp_path: Path
) -> None:
    data = dataset.parse(write_dataset(tmp_path / "tiny.jsonl").read_bytes(), "tiny.jsonl")
    for name, layer in (("fused-mid", 1), ("fused-top", 2)):
        train.ensure(loaded, probes_dir, data, name=name, layer=layer)
    probes = [
        {"probe": "surprisal"},
        {"probe": "author", "params": AUTHOR, "context": False},
        {"probe": "followup", "params": FOLLOWUP},
        {"probe": "linear", "params": {"probe": "fused-mid"}, "name": "linear:mid"},
        {"probe": "linear", "params": {"probe": "fused-top"}, "name": "linear:top"},
    ]
    texts, contexts = [MEDIUM + " fused", SHORT + " fused"], [CONTEXT, CONTEXT]
    # A single-probe request first: the fused one answers surprisal from its cache.
    single = {"texts": texts, "contexts": contexts}
    surprisal = httpx.post(f"{worker.url}/v1/probes/surprisal", json=single, timeout=60).json()
    before = health(worker)
    body = {"texts": texts, "contexts": contexts, "probes": probes}
    reply = httpx.post(f"{worker.url}/v1/readouts", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    after = health(worker)
    assert [set(r) for r in results] == [
        {"surprisal", "author", "followup", "linear:mid", "linear:top"}
    ] * 2
    assert [r["surprisal"]["result"] for r in results] == surprisal["results"]
    assert after["probe_cache_hits"] - before["probe_cache_hits"] == 2
    # Two sequences per text (author reads the text alone), each run once; then one suffix
    # pass per sequence group, plus the calibration's prefill and suffix pass on first use.
    assert after["probe_forward_passes"] - before["probe_forward_passes"] in (4, 6)
    for r in results:
        assert r["linear:mid"]["result"]["layer"] == 1 and r["linear:top"]["result"]["layer"] == 2
        assert set(r["followup"]["result"]["questions"]) == set(FOLLOWUP["questions"])
    alone = {"texts": texts, "params": AUTHOR}
    author = httpx.post(f"{worker.url}/v1/probes/author", json=alone, timeout=60).json()
    assert_close([r["author"]["result"] for r in results], author["results"])

    # Asked again: every readout from the cache, no forward pass.
    again = httpx.post(f"{worker.url}/v1/readouts", json=body, timeout=60).json()["results"]
    assert again == results
    final = health(worker)  # the single author request above was answered from the cache too
    assert final["probe_forward_passes"] == after["probe_forward_passes"]
    assert final["probe_cache_hits"] - after["probe_cache_hits"] == 2 + 10

    # A text too long for the model: its readouts say why, the other text is read.
    body = {"texts": ["word " * 400, SHORT + " ok"], "probes": probes[:3]}
    mixed = httpx.post(f"{worker.url}/v1/readouts", json=body, timeout=60).json()["results"]
    for name in ("surprisal", "author", "followup"):
        assert mixed[0][name]["result"] is None
        assert mixed[0][name]["error"].startswith("texts[0] is too long")
        assert mixed[1][name]["error"] is None and mixed[1][name]["result"]

    bad = {"texts": [SHORT], "probes": [{"probe": "surprisal"}, {"probe": "nope"}]}
    refused = httpx.post(f"{worker.url}/v1/readouts", json=bad, timeout=60)
    assert refused.status_code == 400
    assert "probes[1].probe: unknown probe 'nope'" in refused.json()["error"]["message"]
