"""Contrast datasets for training linear probes: the JSONL format of protocols/data/.

A header line {"header": true, "positive": ..., "negative": ...} comes first, then one example per
line: {"id", "pair", "label": 0|1, "split": "train"|"test", "text", "meta"}. Where
meta.statement_char_start is given (instructed_pairs.jsonl), the text before it is the context:
conditioned on but not read. Whitespace at the seam goes with the statement, so " The" is tokenized
as the model would see it in the full text.

Variants of one file: `as_written` reads each line as it is. `same_statement` is the original
instructed-pairs recipe: both lines of a pair read meta.true_statement after their own
meta.instruction, so the statement is identical and only the instruction in context differs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

VARIANTS = ("as_written", "same_statement")


class DatasetError(Exception):
    """A dataset that cannot be trained on; the message names the file and line."""


@dataclass(frozen=True)
class Example:
    id: str
    label: int
    split: str
    text: str
    """What is read (averaged over)."""
    context: str
    """Conditioned on before `text`, not read."""


@dataclass(frozen=True)
class Dataset:
    path: Path
    sha256: str
    positive: str
    negative: str
    examples: list[Example]
    variant: str = "as_written"

    def split(self, name: str) -> list[Example]:
        return [e for e in self.examples if e.split == name]


def _split_context(text: str, meta: dict, where: str) -> tuple[str, str]:
    start = meta.get("statement_char_start") if isinstance(meta, dict) else None
    if start is None:
        return text, ""
    if not isinstance(start, int) or isinstance(start, bool) or not 0 <= start < len(text):
        raise DatasetError(f"{where}: meta.statement_char_start must be an offset into text")
    context, statement = text[:start], text[start:]
    seam = len(context) - len(context.rstrip())
    if seam:
        context, statement = context[:-seam], context[-seam:] + statement
    return statement, context


def _example(record: object, where: str, *, any_split: bool, variant: str) -> Example:
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: expected a JSON object")
    text, label, split = record.get("text"), record.get("label"), record.get("split")
    if not isinstance(text, str) or not text.strip():
        raise DatasetError(f"{where}: field 'text' must be a non-empty string")
    if not any_split:
        if label not in (0, 1) or isinstance(label, bool):
            raise DatasetError(f"{where}: field 'label' must be 0 or 1, got {label!r}")
        if split not in ("train", "test"):
            raise DatasetError(f"{where}: field 'split' must be 'train' or 'test', got {split!r}")
    meta = record.get("meta") or {}
    if variant == "same_statement":
        instruction = meta.get("instruction") if isinstance(meta, dict) else None
        statement = meta.get("true_statement") if isinstance(meta, dict) else None
        if not isinstance(instruction, str) or not isinstance(statement, str) or not statement:
            raise DatasetError(
                f"{where}: variant same_statement needs meta.instruction and meta.true_statement"
            )
        text, meta = f"{instruction} {statement}", {"statement_char_start": len(instruction) + 1}
    statement, context = _split_context(text, meta, where)
    return Example(str(record.get("id", where)), label or 0, split or "", statement, context)


def load(path: Path, *, control: bool = False, variant: str = "as_written") -> Dataset:
    """Read and check a dataset; `control=True` reads texts only (every label 0, no split)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read the dataset ({e.strerror or e})") from e
    return parse(raw, path, control=control, variant=variant)


def parse(
    raw: bytes, path: Path | str, *, control: bool = False, variant: str = "as_written"
) -> Dataset:
    """A dataset from the bytes of its file; `path` names it in errors and in the result."""
    path = Path(path)
    if variant not in VARIANTS:
        raise DatasetError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    header: dict = {}
    examples = []
    for n, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{where}: not valid JSON ({e.msg})") from e
        if isinstance(record, dict) and record.get("header"):
            header = record
            continue
        examples.append(_example(record, where, any_split=control, variant=variant))
    if not examples:
        raise DatasetError(f"{path}: no examples")
    return Dataset(
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        positive=str(header.get("positive", "positive")),
        negative=str(header.get("negative", "negative")),
        examples=examples,
        variant=variant,
    )


def check_two_classes(data: Dataset) -> None:
    """Both labels in both splits, or a DatasetError saying which is missing."""
    for split in ("train", "test"):
        labels = {e.label for e in data.split(split)}
        if labels != {0, 1}:
            have = ", ".join(str(x) for x in sorted(labels)) or "no examples"
            raise DatasetError(f"{data.path}: the {split} split needs labels 0 and 1 (has {have})")
