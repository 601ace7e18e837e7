"""README.md's "Protocol reference" names every key the protocol schema takes (issue 12: "the
README documents every protocol key with an example"), and its examples are protocol YAML.

The key paths are read from the pydantic models, so a field added to the schema without a line
in the reference fails here. Lists add `[*]` to a path, mappings of models `.<name>`; a union
(the two forms of `materials.templates`, `assistant: {generate: true}`) adds the keys of each
model in it."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, TypeAdapter

from orchestrator.protocol.schema import Protocol

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "## Protocol reference"


def models_in(annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    """(path suffix, model) for every model an annotation holds, through lists, dicts, unions
    and Annotated."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return models_in(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [found for arg in get_args(annotation) for found in models_in(arg)]
    if origin is list:
        return [("[*]" + at, m) for at, m in models_in(get_args(annotation)[0])]
    if origin is dict:
        return [(".<name>" + at, m) for at, m in models_in(get_args(annotation)[1])]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    return []


def key_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key path under `model`, e.g. `design.factors.<name>.levels`, in schema order."""
    paths: list[str] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        paths.append(path)
        for at, sub in models_in(field.annotation):
            paths += key_paths(sub, path + at)
    return list(dict.fromkeys(paths))


def reference() -> str:
    """The reference section: from its heading to the next second-level heading."""
    text = README.read_text(encoding="utf-8")
    assert text.count(HEADING + "\n") == 1, f"README.md needs one {HEADING!r} section"
    section = text.split(HEADING + "\n", 1)[1]
    return section.split("\n## ", 1)[0]


def test_key_paths_reach_every_part_of_the_schema():
    """The walk itself: nested models, list items, dict values and both template forms."""
    paths = key_paths(Protocol)
    for path in (
        "design.factors.<name>.levels",
        "materials.templates.user",
        "materials.templates[*].assistant.generate",
        "materials.templates[*].tool_use.input",
        "subjects[*].params.max_tokens",
        "evaluation.verdict.<name>.min",
        "analysis.qualitative.model.params.temperature",
        "probes.train.<name>.layer",
        "screen.duplicates.min_length",
    ):
        assert path in paths


def test_reference_documents_every_protocol_key():
    section = reference()
    missing = [p for p in key_paths(Protocol) if f"`{p}`" not in section]
    assert not missing, (
        "README.md's Protocol reference does not document these protocol keys (add a table row "
        f"with the key in backticks, its type, default and meaning): {missing}"
    )


def test_reference_documents_only_protocol_keys():
    """A table row's key column names keys that exist: a renamed or removed field fails too."""
    known = set(key_paths(Protocol))
    rows = [line for line in reference().splitlines() if line.startswith("| `")]
    assert rows
    named = [key for row in rows for key in re.findall(r"`([^`]+)`", row.split(" | ")[0])]
    assert not [key for key in named if key not in known]


def test_reference_examples_are_protocol_yaml():
    """Every example parses, and each top-level key in it validates as that part of the
    schema (cross-references between parts are `research validate`'s, not checked here)."""
    blocks = re.findall(r"```yaml\n(.*?)```", reference(), flags=re.S)
    assert len(blocks) >= 10
    fields = Protocol.model_fields
    for block in blocks:
        data = yaml.safe_load(block)
        assert isinstance(data, dict), block
        for key, value in data.items():
            assert key in fields, f"{key!r} is not a protocol key:\n{block}"
            TypeAdapter(Annotated[fields[key].annotation, fields[key]]).validate_python(value)
