"""What a tool is to the agents: its name, description and input schema (what the model sees)
and the handler that runs it; the error a model can fix; validation errors in words for it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from agents.prompts import say

Handler = Callable[[dict[str, Any]], Any]
"""Runs a tool call on its input; returns text or something JSON-serialisable for the model, or
raises `ToolInputError`."""


class ToolInputError(Exception):
    """A tool call the model can fix; goes back to it as an error result."""


@dataclass(frozen=True)
class Tool:
    """One tool a model may call."""

    name: str
    description: str
    input_schema: dict[str, Any]
    handler: Handler

    @property
    def definition(self) -> dict[str, Any]:
        """The tool as the Messages API takes it."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
        }


def explain(error: ValidationError | ValueError, root: str = "input") -> str:
    """A validation error as the model reads it: `loc: message` per error (`root` where the
    error is about the whole object)."""
    if not isinstance(error, ValidationError):
        return str(error)
    errors = [
        (".".join(str(part) for part in err["loc"]) or root, err["msg"]) for err in error.errors()
    ]
    return say("tool_loop.j2", "invalid", errors=errors)
