"""Agreement between evaluators, and of each evaluator with itself → `Agreement`.

Overlap items are judged by two evaluators (the item's primary one and a second); planted
duplicates are judged twice by the same evaluator. For every verdict field with a small set of
comparable values (bool, enum, ordinal, int; not free text or floats) this gives: raw (exact)
agreement and Cohen's kappa over all overlap pairs, Krippendorff's alpha over every item judged
more than once by different evaluators, kappa per pair of evaluators, and self-consistency (the
share of duplicates judged the same both times). Alpha is at the field's level of measurement:
nominal for bool and enum, ordinal for an ordinal (its levels' order, not their names), interval
for an int (how far apart two judgements are counts). Kappa stays unweighted (nominal): exact
agreement beyond chance, comparable across fields. Only scored verdicts count; kappa and alpha
are None where they are undefined (a single category, or no pairs).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Literal

from orchestrator.analysis.result import Agreement, FieldAgreement, PairAgreement
from orchestrator.protocol.schema import Protocol, VerdictField
from orchestrator.records import Records, Verdict, VerdictRole, VerdictStatus

Pair = tuple[Verdict, Verdict]


def _kappa(pairs: list[tuple[str, str]]) -> float | None:
    from statsmodels.stats.inter_rater import cohens_kappa

    cats = sorted({x for p in pairs for x in p})
    if len(pairs) < 2 or len(cats) < 2:
        return None
    index = {c: i for i, c in enumerate(cats)}
    table = [[0] * len(cats) for _ in cats]
    for a, b in pairs:
        table[index[a]][index[b]] += 1
    value = float(cohens_kappa(table, return_results=False))
    return None if math.isnan(value) else value


Level = Literal["nominal", "ordinal", "interval"]
LEVELS: dict[str, Level] = {
    "bool": "nominal",
    "enum": "nominal",
    "ordinal": "ordinal",
    "int": "interval",
}
"""The verdict field types agreement is computed for, and the level of measurement of each."""


def _alpha(units: dict[str, dict[str, Any]], coders: list[str], spec: VerdictField) -> float | None:
    import krippendorff
    import numpy as np

    units = {u: by for u, by in units.items() if len(by) >= 2}
    seen = {v for by in units.values() for v in by.values()}
    if len(units) < 2 or len(seen) < 2:
        return None
    if spec.type == "ordinal":  # a level's rank on the protocol's scale
        code = {level: float(i) for i, level in enumerate(spec.levels)}
    elif spec.type == "int":
        code = {v: float(v) for v in seen}
    else:
        code = {v: float(i) for i, v in enumerate(sorted(seen, key=str))}
    data = np.full((len(coders), len(units)), np.nan)
    for col, by in enumerate(units.values()):
        for coder, value in by.items():
            data[coders.index(coder), col] = code[value]
    level = LEVELS[spec.type]
    value = float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))
    return None if math.isnan(value) else value


def _agree(pairs: list[tuple[str, str]]) -> float | None:
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else None


def _values(pairs: list[Pair], name: str) -> list[tuple[str, str]]:
    return [(str(a.fields[name]), str(b.fields[name])) for a, b in pairs]  # type: ignore[index]


def compute_agreement(protocol: Protocol, records: Records) -> Agreement:
    """Agreement on every categorical verdict field, and per pair on the primary outcome."""
    fields = {n: f for n, f in protocol.evaluation.verdict.items() if f.type in LEVELS}
    scored = [v for v in records.verdicts(None) if v.status == VerdictStatus.SCORED and v.fields]
    primary = {v.item_id: v for v in scored if v.role == VerdictRole.PRIMARY}
    first_look = {(v.item_id, v.evaluator): v for v in scored if v.copy == 0}
    overlap: list[Pair] = [
        (primary[v.item_id], v)
        for v in scored
        if v.role == VerdictRole.OVERLAP and v.item_id in primary
    ]
    dups: list[Pair] = [
        (first_look[(v.item_id, v.evaluator)], v)
        for v in scored
        if v.role == VerdictRole.DUPLICATE and (v.item_id, v.evaluator) in first_look
    ]
    coders = sorted({v.evaluator for v in scored if v.copy == 0})
    by_field = {}
    for name, spec in fields.items():
        units: dict[str, dict[str, Any]] = defaultdict(dict)
        for v in scored:
            if v.copy == 0 and v.role in (VerdictRole.PRIMARY, VerdictRole.OVERLAP):
                units[v.item_id][v.evaluator] = v.fields[name]  # type: ignore[index]
        pairs, twice = _values(overlap, name), _values(dups, name)
        by_field[name] = FieldAgreement(
            overlap_n=len(pairs),
            agree=_agree(pairs),
            kappa=_kappa(pairs),
            alpha=_alpha(units, coders, spec),
            alpha_level=LEVELS[spec.type],
            self_n=len(twice),
            self_agree=_agree(twice),
        )
    return Agreement(
        fields=by_field,
        pairs=_by_pair(overlap, protocol.analysis.primary),
        overlap_items=len(overlap),
        duplicates=len(dups),
    )


def _by_pair(overlap: list[Pair], field: str) -> list[PairAgreement]:
    by_pair: dict[tuple[str, str], list[Pair]] = defaultdict(list)
    for a, b in overlap:
        ea, eb = sorted((a.evaluator, b.evaluator))
        by_pair[(ea, eb)].append((a, b))
    out = []
    for (ea, eb), got in sorted(by_pair.items()):
        pairs = _values(got, field)
        row = PairAgreement(a=ea, b=eb, n=len(pairs), agree=_agree(pairs), kappa=_kappa(pairs))
        out.append(row)
    return out


def headline(data: Agreement, field: str) -> str:
    """One line for SUMMARY.md and the checkpoint: agreement on `field`."""
    f = data.fields.get(field)
    if f is None:
        return "n/a"

    def num(x: float | None, fmt: str = ".2f") -> str:
        return "n/a" if x is None else format(x, fmt)

    between = f"{num(f.agree, '.0%')} (κ {num(f.kappa)}, α {num(f.alpha)}, n={f.overlap_n})"
    itself = f"{num(f.self_agree, '.0%')} (n={f.self_n})"
    return f"between evaluators {between}; self-consistency {itself}"
