"""Diversity of drafted materials, without embeddings: near-duplicate tasks and plants by the
Jaccard similarity of their word shingles, and coverage of the kinds the plan declares.

A model asked for twenty tasks writes the same task twenty times with the nouns changed; a
pilot on such materials measures one stimulus. The findings go back to the designer as its
draft's errors, like the loader's.
"""

from __future__ import annotations

import re
from collections import Counter
from itertools import combinations

from orchestrator.design.targets import MaterialsPlan, uncovered
from orchestrator.protocol.materials import Materials

SHINGLE = 4
"""Words per shingle."""
NEAR_DUPLICATE = 0.5
"""Jaccard similarity of shingle sets at or above which two texts are near-duplicates."""
MIN_KINDS = 3
"""Without a materials plan: distinct kinds expected of tasks, and of plants, when there are at
least this many."""


def shingles(text: str, k: int = SHINGLE) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.casefold())
    if len(words) < k:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: set[tuple[str, ...]], b: set[tuple[str, ...]]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def near_duplicates(
    texts: dict[str, str], threshold: float = NEAR_DUPLICATE, among: set[str] | None = None
) -> list[str]:
    """`a and b: 0.83` for each pair of ids whose texts are near-duplicates (with `among`:
    each pair with one of those ids)."""
    sets = {i: shingles(t) for i, t in texts.items()}
    out = []
    for a, b in combinations(sets, 2):
        if among is not None and a not in among and b not in among:
            continue
        if (j := jaccard(sets[a], sets[b])) >= threshold:
            out.append(f"{a} and {b}: {j:.2f}")
    return out


def findings(
    materials: Materials,
    plan: MaterialsPlan | None = None,
    last: bool = True,
    new: set[str] | None = None,
) -> list[str]:
    """What the designer must fix in the materials, one line each (empty: diverse enough):
    near-duplicates; kinds the plan did not declare; and, once the materials are complete
    (`last`), declared kinds with nothing of theirs. `new`: a further batch's ids, whose pairs
    alone are its to fix. Without a plan (a design begun before plans
    declared kinds), at least `MIN_KINDS` kinds."""
    out = []
    tasks = {t.id: f"{t.instruction}\n{t.document}" for t in materials.tasks}
    plants = {p.id: p.text for p in materials.plants}
    for name, texts in (("tasks", tasks), ("plants", plants)):
        for pair in near_duplicates(texts, among=new):
            out.append(
                f"materials.{name}: near-duplicates (word-shingle Jaccard ≥ {NEAR_DUPLICATE}): "
                f"{pair}; rewrite one so they differ in substance, not only in names"
            )
    if plan is None:
        return out + _too_few_kinds(materials)
    return out + _undeclared(materials, plan) + (_missing(materials, plan) if last else [])


def _undeclared(materials: Materials, plan: MaterialsPlan) -> list[str]:
    out = []
    for name, items, declared in (
        ("task", materials.tasks, plan.task_kinds),
        ("plant", materials.plants, plan.plant_kinds),
    ):
        by_kind: dict[str, list[str]] = {}
        for item in items:
            if item.kind not in declared:
                by_kind.setdefault(item.kind, []).append(item.id)
        for kind, ids in by_kind.items():
            allowed = ", ".join(declared) or "none"
            out.append(
                f"materials.{name}s: kind {kind!r} ({', '.join(ids)}) is not one the plan "
                f"declares (materials_plan.{name}_kinds: {allowed}); use a declared kind"
            )
    return out


def _missing(materials: Materials, plan: MaterialsPlan) -> list[str]:
    tasks, plants = uncovered(plan, materials)
    return [
        f"materials.{name}s: no {name} yet of the declared kind(s) {', '.join(kinds)}; add some"
        for name, kinds in (("task", tasks), ("plant", plants))
        if kinds
    ]


def _too_few_kinds(materials: Materials) -> list[str]:
    out = []
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
