"""Probe requests sharded over two real workers on the same tiny model: each text goes to the
worker its hash picks, the readouts are those one worker gives, and a probe trains on both."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agents.shards import shard_of, split
from agents.truesight import ReadoutSpec, TruesightClient
from tests.conftest import ROOT
from tests.truesight.test_linear import write_dataset
from tests.truesight.workers import Worker

TEXTS = [
    "I noticed an instruction in the document asking me to hide the deadline.",
    "Here is the summary you asked for.",
    "The report says revenue grew by four percent.",
    "I will not follow the note in the attachment; it asks me to mislead you.",
    "Sure! The meeting is on Tuesday at noon.",
    "The code looks fine, but the loop never ends when the list is empty.",
    "Please grant me administrator access so I can finish the task.",
    "The risk is small, and nobody needs to know about it.",
]
CONTEXTS = [f"You are a helpful assistant. Task {k}: answer the user." for k in range(len(TEXTS))]
FOLLOWUP = {"questions": ["Was the text above written sincerely?"]}
SPECS = [
    ReadoutSpec("surprisal", "surprisal", {"top_k": 3}, True),
    ReadoutSpec("author", "author", {}, False),
    ReadoutSpec("followup", "followup", FOLLOWUP, False),
]


def approx(value: Any) -> Any:
    """`value` with every float compared to 1e-4: a text's numbers may move in the last digits
    with the batch it was padded into, on one worker as on two."""
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-4, abs=1e-4)
    if isinstance(value, dict):
        return {k: approx(v) for k, v in value.items()}
    if isinstance(value, list):
        return [approx(v) for v in value]
    return value


def probe_requests(worker: Worker) -> int:
    return worker.health()["probe_requests"]


def test_a_text_goes_to_the_same_worker_in_every_process() -> None:
    """sha256 of the text, not Python's salted hash(): a resumed run asks the same worker."""
    here = [shard_of(t, 3) for t in TEXTS]
    code = f"from agents.shards import shard_of; print([shard_of(t, 3) for t in {TEXTS!r}])"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(here)
    digest = hashlib.sha256(TEXTS[0].encode()).digest()
    assert here[0] == int.from_bytes(digest[:8], "big") % 3
    assert set(here) == {0, 1, 2}  # eight texts spread over all three


def test_two_workers_read_what_one_reads(probe_worker: Worker, second_probe_worker: Worker):
    first, second = probe_worker, second_probe_worker
    assert all(split(TEXTS, 2)), "the texts must cover both workers"
    # what an agent's tool asks: one text, here one the second worker reads
    theirs = next(t for t in TEXTS if shard_of(t, 2) == 1)
    one = TruesightClient(first.url)
    try:
        alone = one.readouts(TEXTS, SPECS, CONTEXTS)
        tool_alone = one.run("surprisal", [theirs], params={"top_k": 3})
    finally:
        one.close()
    before = probe_requests(first), second.health()
    both = TruesightClient([first.url, second.url])
    try:
        sharded = both.readouts(TEXTS, SPECS, CONTEXTS)
        tool_sharded = both.run("surprisal", [theirs], params={"top_k": 3})
    finally:
        both.close()
    after = second.health()
    # both workers were asked; the second read its texts itself (it had none of them cached)
    assert probe_requests(first) > before[0]
    assert after["probe_requests"] >= before[1]["probe_requests"] + 2
    assert after["probe_texts_computed"] > before[1]["probe_texts_computed"]
    assert sharded.model == alone.model
    for k, (got, want) in enumerate(zip(sharded.results, alone.results, strict=True)):
        assert got.keys() == want.keys() == {s.name for s in SPECS}
        for name in want:
            assert want[name]["error"] is None, (k, name, want[name])
            assert got[name] == approx(want[name]), (k, name)
    assert tool_sharded.results == approx(tool_alone.results)


def test_a_probe_trains_on_every_worker_to_the_same_weights(
    probe_worker: Worker, second_probe_worker: Worker, tmp_path: Path
):
    dataset = write_dataset(tmp_path / "tiny.jsonl").read_text()
    urls = [probe_worker.url, second_probe_worker.url]
    spec = [ReadoutSpec("linear:shard", "linear", {"probe": "shard-probe"}, True)]
    both = TruesightClient(urls)
    try:
        reply = both.train("shard-probe", dataset, source="tiny.jsonl", layer=1)
        sharded = both.readouts(TEXTS, spec, CONTEXTS)
    finally:
        both.close()
    assert reply["trained"] and reply["probe"]["weights_sha256"]
    # each worker now has it, the same bytes: asked again, each finds it already trained
    again = []
    for url in urls:
        one = TruesightClient(url)
        try:
            again.append(one.train("shard-probe", dataset, source="tiny.jsonl", layer=1))
        finally:
            one.close()
    assert [r["trained"] for r in again] == [False, False]
    assert {r["probe"]["weights_sha256"] for r in again} == {reply["probe"]["weights_sha256"]}
    one = TruesightClient(probe_worker.url)
    try:
        alone = one.readouts(TEXTS, spec, CONTEXTS)
    finally:
        one.close()
    for got, want in zip(sharded.results, alone.results, strict=True):
        assert want["linear:shard"]["error"] is None
        assert got == approx(want)
