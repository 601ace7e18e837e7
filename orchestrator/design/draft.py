"""A protocol as it is drafted: stages merged into one mapping, dumped as YAML, and checked.

`check_stage` is what the designer's tool answers with: the stage's sections merged into the
protocol so far, dumped, and checked by the real loader's schema and checks once every required
section is there (before that, by the same schema with the missing sections allowed, and the
checks with stand-ins); each error goes back as its field and message, with its line in the
stage's YAML (orchestrator/design/feedback.py).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError, create_model

from orchestrator.design.diversity import findings
from orchestrator.design.feedback import for_stage, stage_yaml
from orchestrator.design.stages import BATCH, DESIGN_ONLY, DesignStage, key
from orchestrator.design.targets import MaterialsPlan, reached
from orchestrator.errors import ProtocolError
from orchestrator.protocol.base import Strict
from orchestrator.protocol.loader import CHECKS, LoadedProtocol, load_protocol_text
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


def add_batch(sections: Draft, batch: Draft) -> Draft:
    """The stage's sections with a further batch's tasks and plants appended to the materials."""
    out = copy.deepcopy(sections)
    materials = out["materials"]
    for name in BATCH:
        materials[name] = [*(materials.get(name) or []), *copy.deepcopy(batch[name])]
    return out


def sections_of(protocol: Draft, stage: DesignStage) -> Draft:
    """The stage's part of a protocol, as its tool input holds it (for an edited draft)."""
    out: Draft = {}
    for section in stage.sections:
        value: Any = protocol
        for part in section.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        out[key(section)] = value
    for name in stage.design_only:  # never in a protocol: the session keeps them
        out[name] = None
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
    return not _missing(protocol)


def _missing(protocol: Draft) -> list[str]:
    return [n for n, f in Protocol.model_fields.items() if f.is_required() and n not in protocol]


STAND_IN_MATERIALS: Draft = {
    "tasks": [{"id": "stand-in", "kind": "stand-in", "instruction": "stand-in"}],
    "templates": {"user": "{{ task.instruction }}"},
}
"""Materials for a draft that has none yet: enough for the loader to check the rest."""


def _stand_ins(protocol: Draft) -> tuple[Draft, list[str]]:
    """The draft with stand-ins for the later stages' required sections, so the loader's
    cross-section rules check what is drafted already; and the stand-ins' names, whose own
    errors are not the draft's. Hypotheses wait for the analysis: their tests name it."""
    missing = _missing(protocol)
    out = dict(protocol)
    if "materials" in missing:
        out["materials"] = copy.deepcopy(STAND_IN_MATERIALS)
    if "analysis" in missing:
        verdict = (protocol.get("evaluation") or {}).get("verdict") or {}
        flags = [k for k, v in verdict.items() if isinstance(v, dict) and v.get("type") == "bool"]
        out["analysis"] = {"primary": flags[0] if flags else "stand-in"}
        out.pop("hypotheses", None)
        missing.append("hypotheses")
    return out, missing


def _partial_model() -> type[BaseModel]:
    fields = {
        name: (info.annotation | None, None)  # type: ignore[operator]
        for name, info in Protocol.model_fields.items()
    }
    return create_model("PartialProtocol", __base__=Strict, **fields)  # type: ignore[call-overload]


_PARTIAL = _partial_model()
"""The protocol schema with every section optional: a draft before its last stage."""


def load_draft(protocol: Draft, path: Path) -> LoadedProtocol:
    """The complete draft through the real loader; raises its `ProtocolError`."""
    return load_protocol_text(dump(protocol), path)


def problems(protocol: Draft, path: Path) -> list[ProtocolError]:
    """What the loader says about the draft; empty when it loads. While later stages' sections
    are missing, the schema checks what is there and the loader's cross-section checks run with
    stand-ins for the rest: a check that stops at a stand-in's error (not the draft's) does not
    keep the next checks from finding the draft's own."""
    if not complete(protocol):
        data, lines = load_with_lines(dump(protocol))
        try:
            _PARTIAL.model_validate(data)
        except ValidationError as e:
            return _all(from_validation(e, path, lines))
    checked, stand_ins = _stand_ins(protocol)
    data, lines = load_with_lines(dump(checked))
    try:
        loaded = Protocol.model_validate(data)
    except ValidationError as e:
        return _own(from_validation(e, path, lines), stand_ins)
    for check in CHECKS:
        try:
            check(loaded, path, lines)
        except ProtocolError as e:
            if own := _own(e, stand_ins):
                return own
    return []


def _all(e: ProtocolError) -> list[ProtocolError]:
    return [e, *e.others]


def _own(e: ProtocolError, stand_ins: list[str]) -> list[ProtocolError]:
    """The errors that are the draft's, not its stand-ins'."""
    return [x for x in _all(e) if not _within(x.field, stand_ins)]


def _within(field: str | None, sections: list[str]) -> bool:
    return field is not None and field.split(".", 1)[0].split("[", 1)[0] in sections


def check_stage(
    so_far: Draft,
    stage: DesignStage,
    sections: Draft,
    path: Path,
    shown: str | None = None,
    plan: MaterialsPlan | None = None,
    batch: int | None = None,
    diversity: bool = True,
    new: set[str] | None = None,
) -> list[str]:
    """Problems of the protocol with this stage's draft merged in: the loader's and those of
    the stage's design-only sections, each as its field and message with its line in `shown`
    (the stage's YAML as the checkpoint shows it; by default, `sections` dumped); then, for the
    materials, near-duplicates and kinds against the `plan` (declared kinds not covered only
    at the last batch: the one that reaches the targets or the bound; `batch` None: an edit of
    the whole stage, the last). `diversity` False: the loader's part only; `new`: the ids
    of a further batch, the only near-duplicate pairs reported being those with one of them."""
    merged = merge(so_far, stage, sections)
    errors = problems(merged, path) + _design_only(stage, sections, path)
    if errors:
        return for_stage(errors, stage, stage_yaml(sections) if shown is None else shown)
    if not (stage.diversity and diversity):
        return []
    materials = Materials.model_validate(merged["materials"])
    last = batch is None or batch + 1 >= stage.batches or plan is None or reached(plan, materials)
    return findings(materials, plan, last, new)


def _design_only(stage: DesignStage, sections: Draft, path: Path) -> list[ProtocolError]:
    """Errors of the stage's design-only sections (the loader never sees them). One left out
    is not an error: a form that writes the plan's structure itself (the compact form) may have
    none, and the materials are then batched and checked as they were before plans had one."""
    if not stage.design_only:
        return []
    fields = {name: (DESIGN_ONLY[name] | None, None) for name in stage.design_only}
    model = create_model(f"DesignOnly_{stage.name}", __base__=Strict, **fields)  # type: ignore[call-overload]
    given = {name: sections[name] for name in stage.design_only if sections.get(name) is not None}
    try:
        model.model_validate(given)
    except ValidationError as e:
        return _all(from_validation(e, path, {}))
    return []


SHOWN_CAP = 2400
"""Characters of the protocol so far a compact brief shows: a small model's context is short."""


def condensed(protocol: Draft) -> str:
    """What a small model needs of the protocol so far: the question, factors, rubric, level
    texts and the materials in brief (documents left out), as YAML, cut at `SHOWN_CAP`."""
    if not protocol:
        return ""
    materials = protocol.get("materials") or {}
    view = {
        "question": protocol.get("question"),
        "factors": (protocol.get("design") or {}).get("factors"),
        "rubric": (protocol.get("evaluation") or {}).get("rubric"),
        "level_text": materials.get("level_text"),
        "tasks": [
            {k: t.get(k) for k in ("id", "kind", "instruction")} for t in materials.get("tasks", [])
        ],
        "plants": materials.get("plants"),
    }
    text = yaml.safe_dump(
        {k: v for k, v in view.items() if v}, sort_keys=False, allow_unicode=True, width=100
    )
    return cut(text)


def cut(text: str) -> str:
    """`text`, cut at `SHOWN_CAP` characters (and said so)."""
    return text if len(text) <= SHOWN_CAP else text[:SHOWN_CAP] + "\n# (cut)\n"
