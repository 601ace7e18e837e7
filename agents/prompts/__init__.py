"""Every text the agents show a model, as Jinja2 templates in this folder, and how they render.

Whole prompts are templates of their own (`render("analyst_system.j2", ...)`); short texts
(tool descriptions, tool errors, nudges, retry messages) are macros, one file per tool or
conversation (`say("tools/flag_issue.j2", "description")`). Templates render with
StrictUndefined in a sandboxed environment: a missing value is an error, never an empty string.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

_env = SandboxedEnvironment(
    loader=FileSystemLoader(Path(__file__).parent),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(template: str, **context: Any) -> str:
    """A whole template, rendered with `context`."""
    return _env.get_template(template).render(**context)


def say(template: str, macro: str, **context: Any) -> str:
    """One macro of a template, called with `context`, without the newlines around it."""
    return str(getattr(_env.get_template(template).module, macro)(**context)).strip("\n")
