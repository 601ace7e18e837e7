"""A protocol as it is drafted: stages merged into one mapping, dumped as YAML, and checked.

`check_stage` is what the designer's tool answers with: the stage's sections merged into the
protocol so far, dumped, and loaded by the real loader once every required section is there
(before that, by the same schema with the missing sections allowed), so an error reads exactly
as `research validate` would print it: `file:line: field: message`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError, create_model

from orchestrator.design.diversity import findings
from orchestrator.design.stages import DesignStage, key
from orchestrator.errors import ProtocolError
from orchestrator.protocol.base import Strict
from orchestrator.protocol.loader import LoadedProtocol, load_protocol_text
from orchestrator.protocol.materials import Materials
from orchestrator.protocol.schema import Protocol
from orchestrator.protocol.validation import from_validation
from orchestrator.protocol.yamlmap import load_with_lines

Draft = dict[str, Any]
"""A protocol (or part of one) as YAML holds it: its shape is the protocol schema's."""


def merge(so_far: Draft, stage: DesignStage, sections: Draft) -> Draft:
    """`so_far` with the stage's sections set from `sections` (the stage's tool input)."""
    out = copy.deepcopy(so_far)
    for section in stage.sections:
        value = copy.deepcopy(sections[key(section)])
        parts = section.split(".")
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return out


def sections_of(protocol: Draft, stage: DesignStage) -> Draft:
    """The stage's part of a protocol, as its tool input holds it (for an edited draft)."""
    out: Draft = {}
    for section in stage.sections:
        value: Any = protocol
        for part in section.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        out[key(section)] = value
    return out


class _Literal(str):
    """A multi-line string, dumped as a `|` block so documents read as they will be shown."""


def _block(dumper: yaml.SafeDumper, value: _Literal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _block)


def _blocks(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _blocks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_blocks(v) for v in value]
    if isinstance(value, str) and "\n" in value and not value.endswith((" ", "\t")):
        return _Literal(value)
    return value


def ordered(protocol: Draft) -> Draft:
    """Sections in the schema's order, the order a reader of deu.yaml expects."""
    order = list(Protocol.model_fields)
    return dict(sorted(protocol.items(), key=lambda kv: _rank(order, kv[0])))


def _rank(order: list[str], name: str) -> int:
    return order.index(name) if name in order else len(order)


def dump(protocol: Draft, header: str = "") -> str:
    """The protocol as YAML, after `header` (each of its lines made a comment)."""
    body = yaml.dump(
        _blocks(ordered(protocol)),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return f"{comment}\n{body}" if comment else body


def complete(protocol: Draft) -> bool:
    required = [n for n, f in Protocol.model_fields.items() if f.is_required()]
    return all(n in protocol for n in required)


def _partial_model() -> type[BaseModel]:
    fields = {
        name: (info.annotation | None, None)  # type: ignore[operator]
        for name, info in Protocol.model_fields.items()
    }
    return create_model("PartialProtocol", __base__=Strict, **fields)  # type: ignore[call-overload]


_PARTIAL = _partial_model()


def load_draft(protocol: Draft, path: Path) -> LoadedProtocol:
    """The complete draft through the real loader; raises its `ProtocolError`."""
    return load_protocol_text(dump(protocol), path)


def problems(protocol: Draft, path: Path) -> list[str]:
    """What the loader says about the draft (the partial schema's errors while sections are
    still missing), one `file:line: field: message` per line; empty when it loads."""
    try:
        if complete(protocol):
            load_draft(protocol, path)
        else:
            data, lines = load_with_lines(dump(protocol))
            try:
                _PARTIAL.model_validate(data)
            except ValidationError as e:
                raise from_validation(e, path, lines) from None
    except ProtocolError as e:
        return e.report().splitlines()
    return []


def check_stage(so_far: Draft, stage: DesignStage, sections: Draft, path: Path) -> list[str]:
    """Problems of the protocol with this stage's draft merged in: the loader's, then (for the
    materials) near-duplicates and kinds the materials do not cover."""
    merged = merge(so_far, stage, sections)
    errors = problems(merged, path)
    if errors or not stage.diversity:
        return errors
    return findings(Materials.model_validate(merged["materials"]))
