"""Small contrast sets in the JSONL format of protocols/data/, written in code for probe tests.

`keyword_set` is a training set whose label one word decides (a bag of words reads it
perfectly); `paired_set` writes any (text, label) pairs, e.g. a transfer set without that word.
Words come from the tiny model's corpus (tests/fakes/tiny_model.py), so they tokenize short.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

FILLER = (
    "the model reads text and writes an answer user asks question assistant replies with care "
    "researchers run experiments on language models to measure how often they notice planted "
    "instructions morning evening night today tomorrow"
).split()


def paired_set(
    path: Path,
    pairs: list[tuple[str, str]],
    *,
    positive: str = "marked",
    negative: str = "plain",
    every_test: int = 4,
) -> Path:
    """One (positive text, negative text) per pair; every `every_test`-th pair is a test pair
    (1: all of them, as in a transfer set)."""
    lines: list[dict] = [{"header": True, "name": path.stem, "positive": positive}]
    lines[0]["negative"] = negative
    for i, texts in enumerate(pairs):
        split = "test" if i % every_test == every_test - 1 else "train"
        for label, text in zip((1, 0), texts, strict=True):
            lines.append(
                {"id": f"p{i}-{label}", "pair": f"p{i}", "label": label, "split": split}
                | {"text": text, "meta": {}}
            )
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def filler(rng: random.Random, n: int = 7) -> list[str]:
    return [rng.choice(FILLER) for _ in range(n)]


def keyword_set(path: Path, keyword: str = "Friday", pairs: int = 24, seed: int = 0) -> Path:
    """Pairs of filler sentences; the positive one carries `keyword` at a random place."""
    rng = random.Random(seed)
    out = []
    for _ in range(pairs):
        marked, plain = filler(rng), filler(rng)
        marked.insert(rng.randrange(len(marked) + 1), keyword)
        out.append((" ".join(marked), " ".join(plain)))
    return paired_set(path, out)


def unmarked_set(path: Path, pairs: int = 20, seed: int = 1) -> Path:
    """A transfer set for `keyword_set` that lacks its keyword: both lines of a pair are the
    same filler sentence, so nothing in the text tells the labels apart."""
    rng = random.Random(seed)
    same = [" ".join(filler(rng)) for _ in range(pairs)]
    return paired_set(path, [(t, t) for t in same], every_test=1)
