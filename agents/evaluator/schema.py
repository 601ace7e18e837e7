"""The verdict schema: protocol fields as a pydantic model (to validate submissions) and as the
`submit_verdicts` tool definition (what the judge model fills in); the tool that takes them is
`agents/evaluator/submit_verdicts.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    conint,
    constr,
    create_model,
)

from agents.prompts import say

SUBMIT_VERDICTS = "submit_verdicts"
"""The tool's name."""

CITES = {
    "truesight_ids": {
        "type": "array",
        "items": {"type": "integer"},
        "maxItems": 8,
        "description": say("tools/submit_verdicts.j2", "cites"),
    }
}
"""The citations a verdict may carry when the agent has the truesight tool."""


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: Literal["bool", "enum", "ordinal", "str", "int", "float"]
    values: tuple[str, ...] = ()
    """The allowed values of an `enum`; the levels of an `ordinal`, lowest first."""
    description: str = ""
    max_length: int | None = None
    """Longest allowed `str` value: checked on submission, and a bound constrained decoding
    keeps to (a small local model would otherwise fill a quote until its token cap)."""
    min: int | None = None
    """Smallest allowed `int` value (checked on submission; `minimum` in the tool's schema)."""
    max: int | None = None
    """Largest allowed `int` value (checked on submission; `maximum` in the tool's schema)."""


def verdict_model(fields: list[FieldSpec]) -> type[BaseModel]:
    types: dict[str, Any] = {
        "bool": StrictBool,
        "str": str,
        "int": StrictInt,
        "float": StrictFloat | StrictInt,
    }
    spec: dict[str, Any] = {"ref": (str, ...)}
    for f in fields:
        kind = types.get(f.type)
        if f.type in ("enum", "ordinal"):
            kind = Literal[f.values]  # type: ignore[valid-type]
        elif f.type == "str" and f.max_length is not None:
            kind = constr(max_length=f.max_length)
        elif f.type == "int" and (f.min is not None or f.max is not None):
            kind = conint(strict=True, ge=f.min, le=f.max)
        spec[f.name] = (kind, ...)
    return create_model("Verdict", __config__=ConfigDict(extra="forbid"), **spec)


def verdict_schema(
    fields: list[FieldSpec], *, ref: bool = True, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One verdict's JSON schema: `ref` (unless the verdicts are keyed by it), the protocol's
    fields, and any `extra` properties."""
    json_types = {"bool": "boolean", "str": "string", "int": "integer", "float": "number"}
    props: dict[str, Any] = {}
    if ref:
        props["ref"] = {"type": "string", "description": say("tools/submit_verdicts.j2", "ref")}
    for f in fields:
        prop: dict[str, Any] = {"description": f.description}
        if f.type in ("enum", "ordinal"):
            prop.update(type="string", enum=list(f.values))
        else:
            prop["type"] = json_types[f.type]
        if f.type == "ordinal":
            prop["description"] = _ordered(f)
        if f.type == "str" and f.max_length is not None:
            prop["maxLength"] = f.max_length
        if f.type == "int" and f.min is not None:
            prop["minimum"] = f.min
        if f.type == "int" and f.max is not None:
            prop["maximum"] = f.max
        props[f.name] = prop
    props |= extra or {}
    return {
        "type": "object",
        "properties": props,
        "required": [k for k in props if k not in (extra or {})],
        "additionalProperties": False,
    }


def _ordered(f: FieldSpec) -> str:
    """An ordinal's description, with its scale spelled out (the enum alone reads unordered)."""
    scale = say("tools/submit_verdicts.j2", "ordinal", levels=list(f.values))
    return f"{f.description} {scale}".strip()


def submit_schema(
    fields: list[FieldSpec], refs: list[str] | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The submit tool's input schema: `verdicts` is a list of verdicts with their refs; with
    `refs`, an object keyed by exactly those refs, so a forced call (constrained decoding on a
    small model) comes out with one verdict for each, none twice, none missing."""
    if refs:
        one = verdict_schema(fields, ref=False, extra=extra)
        verdicts: dict[str, Any] = {
            "type": "object",
            "properties": {r: one for r in refs},
            "required": list(refs),
            "additionalProperties": False,
        }
    else:
        verdicts = {"type": "array", "items": verdict_schema(fields, extra=extra)}
    return {
        "type": "object",
        "properties": {"verdicts": verdicts},
        "required": ["verdicts"],
        # closed: under constrained decoding an open object lets a small model add a key of its
        # own after the verdicts and never stop
        "additionalProperties": False,
    }


def submit_definition(fields: list[FieldSpec], refs: list[str] | None = None) -> dict[str, Any]:
    """submit_verdicts as agents see it; with `refs`, keyed by exactly those refs and without
    citations (the scripted mode, which calls no truesight tool)."""
    return {
        "name": SUBMIT_VERDICTS,
        "description": say("tools/submit_verdicts.j2", "description"),
        "input_schema": submit_schema(fields, refs, extra=None if refs else CITES),
    }
