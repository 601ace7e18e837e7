"""The subject's view of the templates: syntax, branches on levels that exist, and a render of
every task in every cell, so a broken prompt fails before any call is made."""

from __future__ import annotations

import itertools
from pathlib import Path

from jinja2 import TemplateError, UndefinedError
from jinja2.exceptions import SecurityError

from orchestrator.protocol.checks.base import Checker
from orchestrator.protocol.schema import Protocol, Task
from orchestrator.protocol.stimuli import cells, template_context
from orchestrator.protocol.templates import check_syntax, level_references, render
from orchestrator.protocol.yamlmap import Path_, template_line


def check_templates(protocol: Protocol, path: Path, lines: dict[Path_, int]) -> None:
    """Each template in turn, then every render; the first broken one raises."""
    _Templates(protocol, path, lines).templates()


class _Templates(Checker):
    def templates(self) -> None:
        t = self.p.materials.templates
        sources = {"system": t.system, "user": t.user}
        for name, source in sources.items():
            where = ("materials", "templates", name)
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
            for name, source in sources.items():
                self.render(("materials", "templates", name), source, ctx, task)

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
