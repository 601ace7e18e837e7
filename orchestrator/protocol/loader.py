"""Load a protocol file into a validated `Protocol`, or fail with `file:line: field: message`.

Loading checks what pydantic sees (types, unknown and missing fields, n <= 0) and what it cannot:
duplicate keys and ids, references between sections (factor levels, plants, contrasts, outcomes)
and the templates (syntax, sandbox, undefined names, branches on levels that do not exist), which
are rendered once per cell so a broken prompt fails before any call is made. This module reads the
file and runs the checks in order; each kind of check lives in `orchestrator.protocol.checks`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from orchestrator.errors import ProtocolError
from orchestrator.protocol.blinding import check_blinding
from orchestrator.protocol.checks.analysis import check_analysis
from orchestrator.protocol.checks.calls import check_calls
from orchestrator.protocol.checks.hypotheses import check_hypotheses
from orchestrator.protocol.checks.probes import check_probes
from orchestrator.protocol.checks.references import check_references
from orchestrator.protocol.checks.templates import check_templates
from orchestrator.protocol.schema import Protocol
from orchestrator.protocol.validation import from_validation
from orchestrator.protocol.yamlmap import DuplicateKey, dotted, load_with_lines

CHECKS = (
    check_references,
    check_analysis,
    check_hypotheses,  # each test names what the analysis computes
    check_calls,
    check_templates,  # the subject's view, every task in every cell
    check_blinding,  # the evaluators' view
    check_probes,
)
"""The cross-section checks of a validated protocol, in the order the loader runs them."""


@dataclass(frozen=True)
class LoadedProtocol:
    protocol: Protocol
    path: Path
    text: str
    sha256: str

    def data_files(self) -> list[str]:
        """Files the protocol refers to, relative to its folder; a run keeps copies of them."""
        if self.protocol.probes is None:
            return []
        files = set()
        for t in self.protocol.probes.train.values():
            files.add(t.dataset)
            files.update(f for f in (t.control, t.transfer) if f is not None)
        return sorted(files)


def load_protocol(path: str | Path) -> LoadedProtocol:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ProtocolError(f"cannot read the file: {e.strerror}", file=path) from e
    text = raw.decode("utf-8", errors="replace")
    return load_protocol_text(text, path, sha256=hashlib.sha256(raw).hexdigest())


def load_protocol_text(text: str, path: Path, *, sha256: str | None = None) -> LoadedProtocol:
    if not text.strip():
        raise ProtocolError(
            "the file is empty; a protocol needs at least id, design, ...", file=path
        )
    try:
        data, lines = load_with_lines(text)
    except DuplicateKey as e:
        raise ProtocolError(
            "this key is given twice", file=path, line=e.line, field=dotted(e.path)
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        line = mark.line + 1 if mark else None
        raise ProtocolError(f"YAML syntax error: {problem}", file=path, line=line) from None
    if data is None:
        raise ProtocolError("the file holds no fields (only comments or blank lines)", file=path)
    if not isinstance(data, dict):
        raise ProtocolError("the top level must be a mapping of fields", file=path, line=1)
    try:
        protocol = Protocol.model_validate(data)
    except ValidationError as e:
        raise from_validation(e, path, lines) from None
    for check in CHECKS:  # the first broken rule raises
        check(protocol, path, lines)
    digest = sha256 or hashlib.sha256(text.encode()).hexdigest()
    return LoadedProtocol(protocol, path, text, digest)
