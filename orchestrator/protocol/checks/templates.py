"""The subject's view of the templates: a conversation's shape, syntax, branches on levels that
exist, and a render of every task in every cell, so a broken prompt fails before any call is
made."""

from __future__ import annotations

import itertools
from pathlib import Path

from jinja2 import TemplateError, UndefinedError
from jinja2.exceptions import SecurityError

from orchestrator.protocol.checks.base import Checker
from orchestrator.protocol.schema import Protocol, Task, Templates
from orchestrator.protocol.stimuli import cells, template_context, template_sources
from orchestrator.protocol.templates import check_syntax, level_references, render
from orchestrator.protocol.yamlmap import Path_, template_line


def check_templates(protocol: Protocol, path: Path, lines: dict[Path_, int]) -> None:
    """Each template in turn, then every render; the first broken one raises."""
    _Templates(protocol, path, lines).templates()


class _Templates(Checker):
    def templates(self) -> None:
        self.shape()
        sources = template_sources(self.p)
        for where, _, source in sources:
            if (err := check_syntax(source)) is not None:
                line = template_line(self.lines, where, err.lineno or 1)
                raise self.fail(where, f"template syntax error: {err.message}", line)
            for factor, level in level_references(source, self.levels):
                if level not in self.levels[factor]:
                    known = ", ".join(self.levels[factor])
                    raise self.fail(
                        where,
                        f"template compares {factor} with {level!r}, which is not one of its "
                        f"levels ({known})",
                    )
        m = self.p.materials
        plant = m.plants[0] if m.plants else None
        # every task in every cell: a task's fields, like a cell's levels, can break a template
        # (the evaluators' view is check_blinding's: it says when a blinded level is missing)
        for cell, task in itertools.product(cells(self.p), m.tasks):
            ctx = template_context(self.p, cell, 0, task, plant, blind=False)
            for where, _, source in sources:
                self.render(where, source, ctx, task)

    def shape(self) -> None:
        """A list of turns: at most one system turn, first; then user and assistant turns in
        turn, from a user turn to a user turn (the subject's reply to the last is judged)."""
        turns = self.p.materials.templates
        if isinstance(turns, Templates):
            return
        if not turns:
            raise self.fail(
                ("materials", "templates"),
                "the list of turns is empty: write at least `- user: ...`",
            )
        for i, turn in enumerate(turns):
            if turn.role == "system" and i > 0:
                raise self.fail(
                    ("materials", "templates", i),
                    "a system turn must be the first turn (and there is at most one): move it "
                    "to the top of the list",
                )
        roles = [(i, t.role, t.source) for i, t in enumerate(turns) if t.role != "system"]
        for n, (i, role, source) in enumerate(roles):
            previous = roles[n - 1][1] if n else None
            if role == "assistant" and source is None and previous != "user":
                raise self.fail(
                    ("materials", "templates", i),
                    "a `generate` turn must follow a user turn: the subject writes it as its "
                    "reply to the conversation so far",
                )
            expected = "user" if previous in (None, "assistant") else "assistant"
            if role != expected:
                raise self.fail(
                    ("materials", "templates", i),
                    f"turns alternate user and assistant, starting with user: this "
                    f"{role} turn follows {'the system prompt' if previous is None else previous}"
                    f"; put a{'n assistant' if expected == 'assistant' else ' user'} turn "
                    "before it",
                )
        if not roles or roles[-1][1] != "user":
            raise self.fail(
                ("materials", "templates", len(turns) - 1),
                "the last turn must be `user`: the subject's reply to it is what is judged; "
                "end the list with `- user: ...`",
            )

    def render(self, where: Path_, source: str, ctx: dict[str, object], task: Task) -> None:
        try:
            render(source, ctx)
        except SecurityError as e:
            raise self.fail(where, f"template refused by sandbox: {e}") from None
        except UndefinedError as e:
            raise self.fail(
                where,
                f"undefined template variable: {e.message} with task {task.id!r} (available: "
                f"{', '.join(sorted(ctx))}; its fields: {', '.join(task.fields) or 'none'}); give "
                "every task the fields the templates use, or guard one with "
                "{% if fields.<name> is defined %}",
            ) from None
        except TemplateError as e:
            raise self.fail(where, f"template error: {e}") from None
