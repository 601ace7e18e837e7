"""A new protocol file to start from: the commented skeleton, or a copy of a shipped protocol.

`research init NAME [--from deu]` calls `create`. The new file is checked by the protocol
loader before it is written, so what it writes validates as written, and it never replaces a
file that exists.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.protocol import load_protocol
from orchestrator.protocol.base import SLUG
from orchestrator.protocol.loader import load_protocol_text
from orchestrator.protocol.schema import Protocol

SKELETON = Path(__file__).parent / "templates" / "skeleton.yaml"
"""A small 2 x 2 experiment whose comments explain each section."""
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "protocols"
TOP_LEVEL_ID = re.compile(r"^id:.*$", re.MULTILINE)


@dataclass(frozen=True)
class Created:
    """The protocol written, and the data files copied beside it."""

    path: Path
    data_files: list[Path]


def shipped() -> dict[str, Path]:
    """The shipped protocols by name (the file's stem)."""
    return {p.stem: p for p in sorted(SHIPPED_DIR.glob("*.yaml"))}


def create(name: str, out_dir: Path, source: str | None = None) -> Created:
    """Write `out_dir/NAME.yaml`: the skeleton, or the shipped protocol `source`, with its id
    set to `name`. Data files the protocol reads (its probes' datasets) are copied beside it
    when they are not there already. Raises UserError for a bad name or source, or a file in
    the way."""
    if not re.match(SLUG, name):
        raise UserError(
            f"NAME {name!r} becomes the protocol's id: use up to 64 letters, digits, '_', '-' "
            "and '.', starting with a letter or digit"
        )
    template = SKELETON if source is None else _shipped(source)
    target = out_dir / f"{name}.yaml"
    if target.exists():
        raise UserError(
            f"{target} already exists; research init never replaces a file: choose another "
            "NAME, write elsewhere with --out DIR, or remove it first"
        )
    text, found = TOP_LEVEL_ID.subn(f"id: {name}", template.read_text(encoding="utf-8"), count=1)
    if not found:
        raise ValueError(f"{template} has no top-level `id:` line")
    if source is None:  # the skeleton's comments show the commands for this file
        text = text.replace("THIS_FILE", str(target))
    out_dir.mkdir(parents=True, exist_ok=True)
    copied = _copy_data(load_protocol(template).protocol, template.parent, out_dir)
    if load_protocol_text(text, target).protocol.id != name:  # ProtocolError if invalid
        raise ValueError(f"{template}: the first `id:` line is not the protocol's id")
    with target.open("x", encoding="utf-8") as f:  # "x": a file made meanwhile is not replaced
        f.write(text)
    return Created(target, copied)


def _shipped(source: str) -> Path:
    choices = shipped()
    if source not in choices:
        raise UserError(f"--from {source!r}: no such protocol; choose from {', '.join(choices)}")
    return choices[source]


def _copy_data(protocol: Protocol, src_dir: Path, out_dir: Path) -> list[Path]:
    """Copy the data files `protocol` names (relative to `src_dir`) to the same place under
    `out_dir`, unless the same file is there; refuse to replace a different one."""
    rels = []
    if protocol.probes is not None:
        for trained in protocol.probes.train.values():
            rels += [r for r in (trained.dataset, trained.control, trained.transfer) if r]
    copied = []
    for rel in dict.fromkeys(rels):
        src, dst = src_dir / rel, out_dir / rel
        if dst.exists():
            if dst.read_bytes() != src.read_bytes():
                raise UserError(
                    f"{dst} exists and differs from the shipped {src}, which the protocol reads; "
                    "write elsewhere with --out DIR, or move it away first"
                )
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        copied.append(dst)
    return copied
