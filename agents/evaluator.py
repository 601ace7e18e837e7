"""The verdict schema: protocol fields as a pydantic model (to validate submissions) and as the
`submit_verdicts` tool definition (what the judge model fills in). The agents that use them are in
`agents/evaluator_agent.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    constr,
    create_model,
)

TOOL = "submit_verdicts"
_prompts = SandboxedEnvironment(
    loader=FileSystemLoader(Path(__file__).parent / "prompts"),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: Literal["bool", "enum", "str", "int", "float"]
    values: tuple[str, ...] = ()
    description: str = ""
    max_length: int | None = None
    """Longest allowed `str` value: checked on submission, and a bound constrained decoding
    keeps to (a small local model would otherwise fill a quote until its token cap)."""


def verdict_model(fields: list[FieldSpec]) -> type[BaseModel]:
    types: dict[str, Any] = {
        "bool": StrictBool,
        "str": str,
        "int": StrictInt,
        "float": StrictFloat | StrictInt,
    }
    spec: dict[str, Any] = {"ref": (str, ...)}
    for f in fields:
        kind = Literal[f.values] if f.type == "enum" else types[f.type]  # type: ignore[valid-type]
        if f.type == "str" and f.max_length is not None:
            kind = constr(max_length=f.max_length)
        spec[f.name] = (kind, ...)
    return create_model("Verdict", __config__=ConfigDict(extra="forbid"), **spec)


def tool_definition(fields: list[FieldSpec], refs: list[str] | None = None) -> dict[str, Any]:
    """The submit tool; with `refs`, for exactly those items: one verdict each, refs from the
    list (what a forced call on a small model needs to come out complete)."""
    json_types = {"bool": "boolean", "str": "string", "int": "integer", "float": "number"}
    ref: dict[str, Any] = {"type": "string", "description": "The item's ref, e.g. R01."}
    if refs:
        ref["enum"] = list(refs)
    props: dict[str, Any] = {"ref": ref}
    for f in fields:
        prop: dict[str, Any] = {"description": f.description}
        if f.type == "enum":
            prop.update(type="string", enum=list(f.values))
        else:
            prop["type"] = json_types[f.type]
        if f.type == "str" and f.max_length is not None:
            prop["maxLength"] = f.max_length
        props[f.name] = prop
    verdict = {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }
    return {
        "name": TOOL,
        "description": "Submit one verdict per item of the batch.",
        "input_schema": {
            "type": "object",
            "properties": {
                "verdicts": {"type": "array", "items": verdict}
                | ({"minItems": len(refs), "maxItems": len(refs)} if refs else {})
            },
            "required": ["verdicts"],
        },
    }
