"""The protocol's materials: tasks (with their fields), plants and when they are planted, and
the templates that turn them into what a subject sees — two keys, or a list of turns."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Discriminator,
    Field,
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
        "available to templates as `fields.<name>`; blanked in what evaluators see, like "
        "`level_text`, unless named in `evaluation.show_task_fields` (then shown to them apart "
        "from the input).",
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


class Turn(Strict):
    """One turn of a conversation template: exactly one of `system`, `user`, `assistant`."""

    system: str | None = Field(None, description="Jinja2 template of the system prompt.")
    user: str | None = Field(None, description="Jinja2 template of a user message.")
    assistant: str | Generate | None = Field(
        None,
        description="Jinja2 template of a fixed assistant message, or `{generate: true}` for "
        "one the subject writes.",
    )

    @model_validator(mode="after")
    def _one_role(self) -> Turn:
        given = [r for r in ("system", "user", "assistant") if getattr(self, r) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "turn_roles",
                "a turn is one of `- system: ...`, `- user: ...` or `- assistant: ...` "
                "(got {given}): write each as its own list entry",
                {"given": ", ".join(given) or "none"},
            )
        return self

    @property
    def role(self) -> Literal["system", "user", "assistant"]:
        if self.system is not None:
            return "system"
        return "user" if self.user is not None else "assistant"

    @property
    def source(self) -> str | None:
        """The turn's template; None for a turn the subject generates."""
        text = getattr(self, self.role)
        return None if isinstance(text, Generate) else text


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
    templates: TemplateForm = Field(
        description="The subject's prompt: `system` and `user` templates, or a list of turns "
        "(`- system:`, `- user:`, `- assistant:` with a template or `{generate: true}`) ending "
        "with a user turn."
    )
