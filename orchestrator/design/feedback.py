"""The loader's errors as the designer, and the human at a checkpoint, can act on them.

The loader checks the whole protocol dumped as one file, which no one sees while drafting: a line
of that dump points nowhere. What goes back is the field path and the message, with a line only
where the field is in the stage's own sections, counted in the YAML the checkpoint shows (or the
human's edit of it):

    line 12: design.n_per_cell: Input should be greater than 0
    line 140: materials.tasks[17].fields (id translate-menu): undefined template variable ...
    analysis.primary: 'refused' is not a bool field of evaluation.verdict
"""

from __future__ import annotations

import re

import yaml

from orchestrator.design.stages import DesignStage, key
from orchestrator.errors import ProtocolError
from orchestrator.protocol.yamlmap import DuplicateKey, Path_, load_with_lines

_PART = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")


def stage_yaml(sections: dict[str, object]) -> str:
    """A stage's sections as its checkpoint shows them."""
    return yaml.safe_dump(sections, sort_keys=False, allow_unicode=True, width=100)


def parts(field: str) -> Path_:
    """`materials.tasks[3].id` as the path ("materials", "tasks", 3, "id")."""
    return tuple(int(i) if i else name for i, name in _PART.findall(field))


def in_stage(field: str, stage: DesignStage) -> Path_ | None:
    """The field's path within the stage's sections (keyed as its tool input is), or None when
    it lies in another stage's sections."""
    path = parts(field)
    if path[:1] and path[0] in stage.design_only:
        return path
    for section in stage.sections:
        prefix = tuple(section.split("."))
        if path[: len(prefix)] == prefix:
            return (key(section), *path[len(prefix) :])
    return None


def for_stage(errors: list[ProtocolError], stage: DesignStage, shown: str) -> list[str]:
    """Each error as `line N: field: message` (N a line of `shown`, the stage's YAML), or
    `field: message` when the field is not in it."""
    try:
        data, lines = load_with_lines(shown)
    except (yaml.YAMLError, DuplicateKey):  # such an edit is reported as such, not here
        data, lines = None, {}
    out = []
    for e in errors:
        if e.field is None:
            out.append(e.message)
            continue
        where = in_stage(e.field, stage)
        line = _line(lines, where)
        named = _id(data, where)
        text = f"{e.field}{f' (id {named})' if named else ''}: {e.message}"
        out.append(text if line is None else f"line {line}: {text}")
    return out


def _id(data: object, where: Path_ | None) -> str | None:
    """The id of the innermost list item on the way to `where` (a task, a plant, a question):
    what names it across batches, where its index in the whole list does not."""
    found = None
    for part in where or ():
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
            if isinstance(data, dict) and isinstance(data.get("id"), str):
                found = data["id"]
        else:
            break
    return found


def _line(lines: dict[Path_, int], where: Path_ | None) -> int | None:
    """The line of `where`, or of its nearest ancestor within its section (a missing field's
    place); None outside the stage's sections."""
    while where:
        if where in lines:
            return lines[where]
        where = where[:-1]
    return None
