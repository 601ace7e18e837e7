"""The protocol's materials: tasks (with their fields), plants and when they are planted, and
the templates that turn them into what a subject sees — two keys, or a list of turns."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    JsonValue,
    NonNegativeInt,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

from orchestrator.protocol.base import SLUG, Scalar, Strict


class Task(Strict):
    id: str = Field(pattern=SLUG, description="Unique task id.")
    kind: str = Field(description="Kind of task: summarise, answer, reply, review, advise, ...")
    instruction: str = Field(min_length=1, description="What the user asks for.")
    document: str = Field(
        "", description="The input document the task is about; paragraphs separated by blank lines."
    )
    fields: dict[str, Scalar] = Field(
        default_factory=dict,
        description="Further data of the task (a question, its expected answer, a topic), "
        "available to templates as `fields.<name>`. Evaluators see what the templates put in "
        "the input, as the subject did; `evaluation.show_task_fields` also shows them fields "
        "apart from the input (an expected answer, say).",
    )


class Plant(Strict):
    id: str = Field(pattern=SLUG, description="Unique plant id.")
    kind: str = Field(description="steer_user, conceal_fact, downplay_risk, deceive, ...")
    text: str = Field(min_length=1, description="The instruction hidden in the document.")


class PlantWhen(Strict):
    factor: str = Field(description="The factor that switches planting on.")
    level: str = Field(description="The level of that factor at which a plant is inserted.")


class Templates(Strict):
    system: str = Field("", description="Jinja2 template of the subject's system prompt.")
    user: str = Field(min_length=1, description="Jinja2 template of the user message.")


class Generate(Strict):
    generate: Literal[True] = Field(
        description="The subject writes this assistant turn: its reply in an earlier call."
    )


class Tool(Strict):
    """A tool declared to the subject: sent with every subject call, as the Messages API takes
    it (`tools`), and mapped to a function for `provider: openai` subjects."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$", description="The tool's name.")
    description: str = Field(min_length=1, description="What the tool does, as the model reads it.")
    input_schema: dict[str, JsonValue] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema of the tool's input (an object).",
    )

    @model_validator(mode="after")
    def _object_input(self) -> Tool:
        if self.input_schema.get("type") != "object":
            raise PydanticCustomError(
                "tool_schema",
                "a tool's input_schema describes an object (the API takes no other): write "
                "`input_schema: {{type: object, properties: {{name: {{type: string}}}}}}`",
            )
        return self


class ToolUse(Strict):
    """A fixed assistant turn that calls a tool: the conversation's tool call, whose result the
    next turn (`tool_result`) gives."""

    name: str = Field(description="The tool called; one of the protocol's `tools`.")
    input: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="The call's input (JSON values: quote a date); every string in it is a "
        "Jinja2 template.",
    )
    text: str = Field("", description="Jinja2 template of assistant text before the call.")


ROLES = ("system", "user", "assistant", "tool_use", "tool_result")
Role = Literal["system", "user", "assistant", "tool_use", "tool_result"]


class Turn(Strict):
    """One turn of a conversation template: exactly one of `system`, `user`, `assistant`,
    `tool_use` or `tool_result`."""

    system: str | None = Field(None, description="Jinja2 template of the system prompt.")
    user: str | None = Field(None, description="Jinja2 template of a user message.")
    assistant: str | Generate | None = Field(
        None,
        description="Jinja2 template of a fixed assistant message, or `{generate: true}` for "
        "one the subject writes.",
    )
    tool_use: ToolUse | None = Field(
        None, description="A fixed assistant turn calling a tool: `{name, input, text}`."
    )
    tool_result: str | None = Field(
        None, description="Jinja2 template of the result of the tool called just before."
    )

    @model_validator(mode="after")
    def _one_role(self) -> Turn:
        given = [r for r in ROLES if getattr(self, r) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "turn_roles",
                "a turn is one of `- system: ...`, `- user: ...`, `- assistant: ...`, "
                "`- tool_use: {{name: ..., input: ...}}` or `- tool_result: ...` (got {given}): "
                "write each as its own list entry",
                {"given": ", ".join(given) or "none"},
            )
        return self

    @property
    def role(self) -> Role:
        return next(r for r in ROLES if getattr(self, r) is not None)

    @property
    def source(self) -> str | None:
        """The turn's template (a tool call's text before it); None for a turn the subject
        generates."""
        text = getattr(self, self.role)
        if isinstance(text, ToolUse):
            return text.text
        return None if isinstance(text, Generate) else text

    def sources(self) -> list[tuple[tuple[str | int, ...], str]]:
        """(where below the turn, template) for every template of the turn: a tool call's
        text and each string of its input."""
        if self.tool_use is None:
            return [] if self.source is None else [((self.role,), self.source)]
        out: list[tuple[tuple[str | int, ...], str]] = [(("tool_use", "text"), self.tool_use.text)]
        return out + [(("tool_use", "input", *at), s) for at, s in strings(self.tool_use.input)]


def strings(value: Any, at: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], str]]:
    """(where, string) for every string inside a JSON-like value."""
    if isinstance(value, str):
        return [(at, value)]
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in strings(v, (*at, k))]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in strings(v, (*at, i))]
    return []


def _template_form(value: object) -> str:
    return "turns" if isinstance(value, list) else "keys"


TemplateForm = Annotated[
    Annotated[Templates, Tag("keys")] | Annotated[list[Turn], Tag("turns")],
    Discriminator(_template_form),
]
"""`system:` and `user:` keys, or a list of turns for a longer conversation."""


class Materials(Strict):
    tasks: list[Task] = Field(min_length=1, description="Tasks; cycled in a seeded order.")
    plants: list[Plant] = Field(
        default_factory=list, description="Planted instructions; cycled in a seeded order."
    )
    plant_when: PlantWhen | None = Field(
        None, description="When to insert a plant into the document (omit for no plants)."
    )
    level_text: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Text per factor level, available to templates as `text.<factor>`; it is "
        "removed from what evaluators see, which keeps them blind to the condition.",
    )
    plant_into: Literal["document"] | NonNegativeInt = Field(
        "document",
        description="Which part receives the plant: `document` (between two paragraphs of the "
        "`document` templates read, wherever they put it), or the index of a turn in "
        "`templates` (a list), e.g. a `tool_result` or an earlier `user` turn, between two of "
        "its paragraphs.",
    )
    templates: TemplateForm = Field(
        description="The subject's prompt: `system` and `user` templates, or a list of turns "
        "(`- system:`, `- user:`, `- assistant:` with a template or `{generate: true}`, "
        "`- tool_use:` and `- tool_result:`) ending with a user or tool_result turn."
    )
