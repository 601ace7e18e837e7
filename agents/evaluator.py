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
        spec[f.name] = (kind, ...)
    return create_model("Verdict", __config__=ConfigDict(extra="forbid"), **spec)


def tool_definition(fields: list[FieldSpec]) -> dict[str, Any]:
    json_types = {"bool": "boolean", "str": "string", "int": "integer", "float": "number"}
    props: dict[str, Any] = {"ref": {"type": "string", "description": "The item's ref, e.g. R01."}}
    for f in fields:
        prop: dict[str, Any] = {"description": f.description}
        if f.type == "enum":
            prop.update(type="string", enum=list(f.values))
        else:
            prop["type"] = json_types[f.type]
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
            "properties": {"verdicts": {"type": "array", "items": verdict}},
            "required": ["verdicts"],
        },
    }
