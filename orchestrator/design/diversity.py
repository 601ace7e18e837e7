"""Diversity of drafted materials, without embeddings: near-duplicate tasks and plants by the
Jaccard similarity of their word shingles, and kinds the materials leave uncovered.

A model asked for twenty tasks writes the same task twenty times with the nouns changed; a
pilot on such materials measures one stimulus. The findings go back to the designer as its
draft's errors, like the loader's.
"""

from __future__ import annotations

import re
from collections import Counter
from itertools import combinations

from orchestrator.protocol.materials import Materials

SHINGLE = 4
"""Words per shingle."""
NEAR_DUPLICATE = 0.5
"""Jaccard similarity of shingle sets at or above which two texts are near-duplicates."""
MIN_KINDS = 3
"""Distinct kinds expected of tasks, and of plants, when there are at least this many."""


def shingles(text: str, k: int = SHINGLE) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.casefold())
    if len(words) < k:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: set[tuple[str, ...]], b: set[tuple[str, ...]]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def near_duplicates(texts: dict[str, str], threshold: float = NEAR_DUPLICATE) -> list[str]:
    """`a and b: 0.83` for each pair of ids whose texts are near-duplicates."""
    sets = {i: shingles(t) for i, t in texts.items()}
    out = []
    for a, b in combinations(sets, 2):
        if (j := jaccard(sets[a], sets[b])) >= threshold:
            out.append(f"{a} and {b}: {j:.2f}")
    return out


def findings(materials: Materials) -> list[str]:
    """What the designer must fix in the materials, one line each (empty: diverse enough)."""
    out = []
    tasks = {t.id: f"{t.instruction}\n{t.document}" for t in materials.tasks}
    plants = {p.id: p.text for p in materials.plants}
    for name, texts in (("tasks", tasks), ("plants", plants)):
        for pair in near_duplicates(texts):
            out.append(
                f"materials.{name}: near-duplicates (word-shingle Jaccard ≥ {NEAR_DUPLICATE}): "
                f"{pair}; rewrite one so they differ in substance, not only in names"
            )
    task_kinds = Counter(t.kind for t in materials.tasks)
    plant_kinds = Counter(p.kind for p in materials.plants)
    for name, kinds, n in (
        ("tasks", task_kinds, len(materials.tasks)),
        ("plants", plant_kinds, len(materials.plants)),
    ):
        if n >= MIN_KINDS and len(kinds) < MIN_KINDS:
            out.append(
                f"materials.{name}: only {len(kinds)} kind(s) ({', '.join(sorted(kinds))}) "
                f"among {n}; cover at least {MIN_KINDS} kinds"
            )
    return out
