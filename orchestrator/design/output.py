"""Where a design is written: the file `--out` names, or by default `protocols/<plan id>.yaml`
(the approved plan's `id`), `<id>-2.yaml`, `<id>-3.yaml`, ... when it is taken. Never over a file
that exists: each name is created exclusively, so a file that appears meanwhile is not lost."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.errors import UserError

PROTOCOLS = Path("protocols")
"""The default folder, relative to where the command runs (as `research run protocols/...`)."""


def taken(out: Path) -> UserError:
    return UserError(f"{out} exists; name another file with --out")


def default_out(plan_id: str, folder: Path = PROTOCOLS) -> Path:
    """The first name the design would be written to without `--out`."""
    return folder / f"{plan_id}.yaml"


def create(text: str, out: Path | None, plan_id: str) -> Path:
    """`text` written to `out`, or to the first free default name for `plan_id`."""
    if out is not None:
        if not _create(out, text):
            raise taken(out)
        return out
    first = default_out(plan_id)
    n = 1
    while not _create(path := first.with_name(_name(plan_id, n)), text):
        n += 1
    return path


def _name(plan_id: str, n: int) -> str:
    return f"{plan_id}.yaml" if n == 1 else f"{plan_id}-{n}.yaml"


def _create(path: Path, text: str) -> bool:
    """Whether `path` was created with `text` (False: it exists). Written to a temporary file
    and linked into place, so the name appears with the whole text or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from e
    finally:
        tmp.unlink(missing_ok=True)
    return True
