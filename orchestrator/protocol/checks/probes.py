"""The probes section: trained probes have something to train on, names fit, and each data file
is a file inside the protocol's folder."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from orchestrator.protocol.checks.base import Checker
from orchestrator.protocol.schema import TRAINED, Protocol
from orchestrator.protocol.yamlmap import Path_

TRAINED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,40}$")


def check_probes(protocol: Protocol, path: Path, lines: dict[Path_, int]) -> None:
    """Each rule in turn; the first broken one raises."""
    check = Checker(protocol, path, lines)
    spec = check.p.probes
    if spec is None:
        return
    where = ("probes",)
    for i, name in enumerate(spec.run):
        if name in TRAINED and not spec.train:
            raise check.fail(
                where + ("run", i),
                f"{name!r} applies trained probes: name at least one under probes.train",
            )
    for name in TRAINED:
        if name in spec.params:
            raise check.fail(
                where + ("params", name),
                f"{name} takes its probes from probes.train; give no params for it",
            )
    for name, trained in spec.train.items():
        if not TRAINED_NAME.match(name):
            raise check.fail(
                where + ("train", name),
                f"probe name {name!r}: use up to 41 letters, digits, '_' and '-'",
            )
        for field in ("dataset", "control", "transfer"):
            rel = getattr(trained, field)
            if rel is None:
                continue
            problem = data_file_problem(check.path, rel)
            if problem is not None:
                raise check.fail(where + ("train", name, field), problem)


def data_file_problem(protocol_path: Path, rel: str) -> str | None:
    """Why `rel` cannot be a data file of the protocol at `protocol_path`, or None."""
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or "\\" in rel:
        return f"{rel!r} must be a relative path inside the protocol's folder (no '..')"
    full = protocol_path.parent / p
    if not full.is_file():
        return f"no file {rel!r} next to the protocol (looked for {full})"
    return None
