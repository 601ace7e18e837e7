"""Mutated protocols load as a valid Protocol or fail as a ProtocolError — nothing else.

Hypothesis drops, retypes, renames and garbles fields of deu.yaml (and garbles its raw text), then
loads each through the loader and through `research validate`: the CLI must exit 0 or 2, with a
`file:line` message and never a traceback.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.cli.app import main
from orchestrator.errors import ProtocolError
from orchestrator.protocol import Protocol, load_protocol
from tests.conftest import DEU

BASE_TEXT = DEU.read_text()
BASE = yaml.safe_load(BASE_TEXT)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):  # a few list items are enough to reach every shape
            out += paths(v, prefix + (i,))
    return out


ALL_PATHS = paths(BASE)
garbage = st.one_of(
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.just("{{ undefined_name }}"),
    st.just("{% if framing == 'nope' %}x{% endif %}"),
    st.just("{{ ''.__class__ }}"),
)


def parent_of(data: Any, path: tuple) -> tuple[Any, Any]:
    node = data
    for part in path[:-1]:
        node = node[part]
    return node, path[-1]


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["drop", "retype", "rename", "extra", "raw"]))
    if kind == "raw":
        pos = draw(st.integers(0, len(BASE_TEXT)))
        junk = draw(st.text(alphabet=":-[]{}'\"#&*!|> \n\tab0", min_size=1, max_size=6))
        return BASE_TEXT[:pos] + junk + BASE_TEXT[pos:]
    data = copy.deepcopy(BASE)
    parent, key = parent_of(data, draw(st.sampled_from(ALL_PATHS)))
    if kind == "drop":
        del parent[key]
    elif kind == "retype":
        parent[key] = draw(garbage)
    elif kind == "rename" and isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=8))] = parent.pop(key)
    elif kind == "extra" and isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=8))] = draw(garbage)
    else:
        parent[key] = draw(garbage)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


@settings(
    max_examples=220,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=mutated_text())
def test_mutated_protocols_load_or_fail_cleanly(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mutant.yaml"
    path.write_text(text)
    try:
        result = load_protocol(path)
        assert isinstance(result.protocol, Protocol)
        expected = 0
    except ProtocolError as e:
        assert str(e).startswith(str(path))
        expected = 2
    monkeypatch.setattr(sys, "argv", ["research", "validate", str(path)])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    assert code == expected, out.err
    assert "Traceback" not in out.err
    if expected == 2:
        assert f"protocol error {path}" in " ".join(out.err.split())
