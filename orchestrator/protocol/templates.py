"""Protocol prompt templates: a sandboxed Jinja2 environment and the checks run at load time.

Templates come from protocol files, which are shared and edited by hand, so they render in an
immutable sandbox with `StrictUndefined`: a template cannot reach Python internals, and a
misspelled variable is an error, not an empty string in 400 prompts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

_env = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
)


def environment() -> ImmutableSandboxedEnvironment:
    return _env


def check_syntax(source: str) -> TemplateSyntaxError | None:
    try:
        _env.parse(source)
    except TemplateSyntaxError as e:
        return e
    return None


@lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    return _env.from_string(source)


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render a protocol template. Errors (undefined names, sandbox refusals) propagate."""
    return _compiled(source).render(**context)


def level_references(source: str, factors: Mapping[str, list[str]]) -> Iterator[tuple[str, str]]:
    """Yield (factor, level) for each literal level a template compares a factor with.

    Catches `{% if framing == "deu2" %}`, `factors.framing != 'x'` and `framing in ['a', 'b']`:
    a branch on a level that does not exist would silently never run.
    """
    for cmp in _env.parse(source).find_all(nodes.Compare):
        operands = [cmp.expr] + [op.expr for op in cmp.ops]
        names = [f for f in (_factor_name(o, factors) for o in operands) if f]
        for factor in names:
            for operand in operands:
                for value in _constants(operand):
                    yield factor, value


def _factor_name(node: nodes.Node, factors: Mapping[str, list[str]]) -> str | None:
    if isinstance(node, nodes.Name) and node.name in factors:
        return node.name
    if isinstance(node, nodes.Getattr) and _is_name(node.node, "factors"):
        return node.attr if node.attr in factors else None
    if isinstance(node, nodes.Getitem) and _is_name(node.node, "factors"):
        arg = node.arg
        if isinstance(arg, nodes.Const) and arg.value in factors:
            return arg.value
    return None


def _is_name(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Name) and node.name == name


def _constants(node: nodes.Node) -> Iterator[str]:
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, nodes.List | nodes.Tuple):
        for item in node.items:
            yield from _constants(item)
