"""Blind by construction: the evaluator view of an item must not change with a blinded factor.

Evaluators see an item's user message (for a list of turns: every turn but the system prompt,
tool calls and results included) rendered from a context without any blinded factor's level
(`template_context(..., blind=True)`), so a template they see that reads such a level cannot be
rendered for them. This check runs at
load time, before anything is called, and turns that into one clear refusal: which template
line, which factor, two of its levels that change what judges would see, and what to write
instead. The subject's view may change with every factor (that is
the manipulation); condition text meant for subjects only belongs in `materials.level_text`.

`evaluation.show_task_fields` shows judges some of a task's `fields` (an expected answer, say)
beside each item. That is blind-safe by construction: fields belong to the task, which every cell
shares in the same seeded order, not to the cell, so they cannot carry a blinded factor's level or
text (that lives in `level_text`, keyed by level). The only check is that each name is a field.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import TemplateError, UndefinedError, nodes

from orchestrator.errors import ProtocolError
from orchestrator.protocol.schema import Protocol, Task
from orchestrator.protocol.stimuli import (
    Cell,
    blinded_factors,
    cells,
    template_context,
    template_sources,
)
from orchestrator.protocol.templates import check_syntax, environment, render
from orchestrator.protocol.yamlmap import Path_, dotted, line_of, template_line


def check_blinding(protocol: Protocol, path: Path, lines: dict[Path_, int]) -> None:
    """Refuse `evaluation.unblinded` naming no factor, or an evaluator view that reads a level."""
    factors = protocol.design.factors
    for i, name in enumerate(protocol.evaluation.unblinded):
        if name not in factors:
            where = ("evaluation", "unblinded", i)
            raise ProtocolError(
                f"unknown factor {name!r} (factors: {', '.join(factors)})",
                file=path,
                line=line_of(lines, where),
                field=dotted(where),
            )
    _check_shown_fields(protocol, path, lines)
    for where, role, source in template_sources(protocol):
        if role != "system":
            _check_view(protocol, path, lines, where, source)


def _check_view(
    protocol: Protocol, path: Path, lines: dict[Path_, int], where: Path_, source: str
) -> None:
    """One template evaluators see renders without the blinded levels, for every task."""
    if check_syntax(source) is not None:
        return  # the template checks report it, with its line
    for task in protocol.materials.tasks:
        for cell in _one_per_unblinded_levels(protocol):
            try:
                render(source, template_context(protocol, cell, 0, task, None, blind=True))
            except UndefinedError as e:
                raise _refusal(protocol, path, lines, (where, source), task, e) from None
            except TemplateError:
                return  # the template checks report it


def _check_shown_fields(protocol: Protocol, path: Path, lines: dict[Path_, int]) -> None:
    """Refuse a name in `evaluation.show_task_fields` that no task has among its `fields`
    (a task lacking a name some other task has shows it to judges as absent)."""
    known = sorted({name for task in protocol.materials.tasks for name in task.fields})
    for i, name in enumerate(protocol.evaluation.show_task_fields):
        if name in known:
            continue
        where = ("evaluation", "show_task_fields", i)
        have = f"the tasks' fields are {', '.join(known)}" if known else "no task has fields"
        raise ProtocolError(
            f"no task has a field {name!r} ({have}). Give the tasks judges should see it for "
            f"`fields: {{{name}: ...}}` in materials.tasks, or remove {name!r} from "
            "evaluation.show_task_fields.",
            file=path,
            line=line_of(lines, where),
            field=dotted(where),
        )


def _one_per_unblinded_levels(protocol: Protocol) -> list[Cell]:
    """A cell for each combination of the unblinded factors' levels: the evaluator views."""
    seen: dict[tuple[tuple[str, str], ...], Cell] = {}
    for cell in cells(protocol):
        key = tuple((f, lv) for f, lv in cell.levels if f in protocol.evaluation.unblinded)
        seen.setdefault(key, cell)
    return list(seen.values())


def _refusal(
    protocol: Protocol,
    path: Path,
    lines: dict[Path_, int],
    template: tuple[Path_, str],
    task: Task,
    error: TemplateError,
) -> ProtocolError:
    where, source = template
    found = _differing_levels(protocol, source, task)
    if found is None:
        return ProtocolError(
            f"the evaluator view (the {where[-1]} template without blinded levels) cannot be "
            "rendered "
            f"for task {task.id!r}: {error}. Evaluators see this template without the level of "
            f"any blinded factor ({', '.join(blinded_factors(protocol))}) or the subject. "
            + _ADVICE.format(factor="<factor>"),
            file=path,
            line=_line(lines, where, source, None),
            field=dotted(where),
        )
    factor, a, b = found
    return ProtocolError(
        f"the evaluator view of task {task.id!r} changes with blinded factor {factor!r}: it "
        f"differs between levels {a!r} and {b!r}, so judges could tell the conditions apart. "
        + _ADVICE.format(factor=factor),
        file=path,
        line=_line(lines, where, source, factor),
        field=dotted(where),
    )


_ADVICE = (
    "Put text that only the subject should see in materials.level_text.{factor} and use it as "
    "`{{{{ text.{factor} }}}}` (it is removed from what evaluators see), or, if judges may know "
    "this factor, declare it in evaluation.unblinded."
)


def _differing_levels(protocol: Protocol, source: str, task: Task) -> tuple[str, str, str] | None:
    """(factor, level, level): two cells alike but for one blinded factor (or the subject) whose
    rendering of `source`, level text removed, differs for `task`; None if none is found."""
    views: dict[Cell, str] = {}
    for cell in cells(protocol):
        ctx = template_context(protocol, cell, 0, task, None, blind=False)
        ctx["text"] = dict.fromkeys(ctx["text"], "")
        try:
            views[cell] = render(source, ctx)
        except TemplateError:
            return None
    for factor in [*blinded_factors(protocol), "subject"]:
        for cell, view in views.items():
            for other, other_view in views.items():
                if _differ_only_in(cell, other, factor) and view != other_view:
                    return factor, _value(cell, factor), _value(other, factor)
    return None


def _value(cell: Cell, factor: str) -> str:
    return cell.subject if factor == "subject" else dict(cell.levels)[factor]


def _differ_only_in(a: Cell, b: Cell, factor: str) -> bool:
    if factor == "subject":
        return a.levels == b.levels and a.subject != b.subject
    da, db = dict(a.levels), dict(b.levels)
    return (
        a.subject == b.subject
        and da[factor] != db[factor]
        and {k: v for k, v in da.items() if k != factor}
        == {k: v for k, v in db.items() if k != factor}
    )


def _line(lines: dict[Path_, int], where: Path_, source: str, factor: str | None) -> int | None:
    """The protocol-file line where the template at `where` first reads `factor`, else the
    line of the template itself."""
    for node in environment().parse(source).find_all((nodes.Name, nodes.Getattr)):
        read = node.name if isinstance(node, nodes.Name) else node.attr
        if factor is not None and read == factor:
            return template_line(lines, where, node.lineno)
    return line_of(lines, where)
