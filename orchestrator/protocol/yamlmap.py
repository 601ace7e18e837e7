"""YAML loading that remembers where every value sits, so errors can name a line.

PyYAML's composer gives nodes with marks; we walk them once to build a map from a value's path
(as pydantic spells a `loc`: keys and list indices) to its 1-based line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 5-10x faster


class DuplicateKey(Exception):
    def __init__(self, path: Path_, line: int):
        self.path, self.line = path, line


def load_with_lines(text: str) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML text; return the data and a map from value path to line.

    Raises `yaml.YAMLError` for syntax errors and `DuplicateKey` for a key given twice (PyYAML
    would silently keep the last one, which hides exactly the mistakes we want to catch).
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[Path_, int] = {}
        _walk(node, (), lines)
        return loader.construct_document(node), lines
    finally:
        loader.dispose()


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise DuplicateKey(path + (key,), key_node.start_mark.line + 1)
            seen.add(key)
            _walk(value_node, path + (key,), lines)
            # a field's line is where its key is written, not where a block value starts
            lines[path + (key,)] = key_node.start_mark.line + 1
            if isinstance(value_node, yaml.ScalarNode):
                lines[path + (key, "__value__")] = value_node.start_mark.line + 1
                lines[path + (key, "__style__")] = 1 if value_node.style in ("|", ">") else 0
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), lines)


def line_of(lines: dict[Path_, int], path: Path_) -> int | None:
    """The line of `path`, or of its nearest ancestor present in the file."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get((), None)


def template_line(lines: dict[Path_, int], path: Path_, lineno: int) -> int | None:
    """The file line of line `lineno` (1-based) inside the scalar at `path`."""
    start = lines.get(tuple(path) + ("__value__",))
    if start is None:
        return line_of(lines, path)
    if not lines.get(tuple(path) + ("__style__",), 0):
        return start  # a quoted scalar's "\n" escapes are not file lines
    return start + lineno


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")
