"""The subject's view of the templates: a conversation's shape, syntax, branches on levels that
exist, and a render of every task in every cell, so a broken prompt fails before any call is
made."""

from __future__ import annotations

import itertools
from pathlib import Path

from jinja2 import TemplateError, UndefinedError
from jinja2.exceptions import SecurityError

from orchestrator.protocol.checks.base import Checker
from orchestrator.protocol.schema import Protocol, Task, Templates, Turn
from orchestrator.protocol.stimuli import cells, template_context, template_sources
from orchestrator.protocol.templates import check_syntax, level_references, render
from orchestrator.protocol.yamlmap import Path_, template_line

USER_SIDE = ("user", "tool_result")


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
        alone = self.own_messages()
        for cell, task in itertools.product(cells(self.p), m.tasks):
            ctx = template_context(self.p, cell, 0, task, plant, blind=False)
            for where, _, source in sources:
                text = self.render(where, source, ctx, task)
                if where in alone and not text.strip():
                    raise self.fail(
                        where,
                        f"this turn renders empty for task {task.id!r} in cell {cell.key}, and "
                        "the API refuses an empty message: give it text in every cell (text "
                        "only some cells have belongs inside a turn that always has some)",
                    )
        self.plant_place()

    def own_messages(self) -> set[Path_]:
        """Where the templates are that make a message of their own (a user or fixed assistant
        turn, not a user's words after a tool result), which must never render empty."""
        t = self.p.materials.templates
        if isinstance(t, Templates):
            return {("materials", "templates", "user")}
        out: set[Path_] = set()
        for i, turn in enumerate(t):
            after_result = i > 0 and t[i - 1].role == "tool_result"
            if turn.role in ("user", "assistant") and turn.source is not None and not after_result:
                out.add(("materials", "templates", i, turn.role))
        return out

    def plant_place(self) -> None:
        """A plant put into a turn (`plant_into: <k>`) lands between two of its paragraphs,
        chosen from the seed: the turn must read the same in every cell, or the plant would sit
        at a different place in each condition (and judges would see it elsewhere)."""
        into, turns = self.p.materials.plant_into, self.p.materials.templates
        if into == "document" or isinstance(turns, Templates) or not self.p.materials.plants:
            return
        source = turns[into].source or ""
        for task in self.p.materials.tasks:
            seen: dict[str, str] = {}
            for cell in cells(self.p):
                ctx = template_context(self.p, cell, 0, task, None, blind=False)
                seen.setdefault(render(source, ctx), cell.key)
            if len(seen) > 1:
                a, b = list(seen.values())[:2]
                raise self.fail(
                    ("materials", "plant_into"),
                    f"turn {into} reads differently in cells {a} and {b} (task {task.id!r}), so "
                    "a plant would sit at a different place in each condition: plant into a "
                    "turn that is the same in every cell, or into `document`",
                )

    def shape(self) -> None:
        """A list of turns: at most one system turn, first; then the user's side (`user`,
        `tool_result`) and the assistant's (`assistant`, `tool_use`) in turn, from a user turn
        to a user or tool_result turn (the subject's reply to it is judged) or to a fixed
        assistant turn (a prefill the subject's reply continues). A tool call is answered by
        the turn right after it, and only a tool call is; the user may add words after a tool
        result (one message)."""
        turns = self.p.materials.templates
        self.tools()
        if isinstance(turns, Templates):
            self.plant_target(None)
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
            self.turn_after(i, role, source, previous)
        last, role, source = roles[-1] if roles else (len(turns) - 1, "system", "")
        if role == "tool_use":
            raise self.fail(
                ("materials", "templates", last),
                "a tool call must be answered: add `- tool_result: ...` after it (the "
                "subject's reply to the result is what is judged)",
            )
        if role not in ("user", "tool_result") and not (role == "assistant" and source):
            raise self.fail(
                ("materials", "templates", last),
                "the last turn must be `user` or `tool_result`: the subject's reply to it is "
                "what is judged; end the list with `- user: ...` (or a fixed `- assistant: ...` "
                "for a prefill the reply continues)",
            )
        self.plant_target(turns)

    def turn_after(self, i: int, role: str, source: str | None, previous: str | None) -> None:
        """The turn at `i` may follow `previous` (None: the system prompt or nothing)."""
        where = ("materials", "templates", i)
        if previous == "tool_use" and role != "tool_result":
            raise self.fail(
                where,
                f"this {role} turn follows a tool call: the turn after `- tool_use:` must be "
                "`- tool_result: ...`, the tool's answer",
            )
        if role == "tool_result" and previous != "tool_use":
            raise self.fail(
                where,
                "a tool_result answers the tool call just before it: put `- tool_use: {name: "
                "..., input: {...}}` before this turn",
            )
        if role == "assistant" and source is None and previous not in USER_SIDE:
            raise self.fail(
                where,
                "a `generate` turn must follow a user or tool_result turn: the subject writes "
                "it as its reply to the conversation so far",
            )
        if role == "user" and previous == "tool_result":
            return  # the user's words after a tool result: one message with it
        if role == "tool_result":
            return
        side = "user" if role in USER_SIDE else "assistant"
        expected = "user" if previous is None or previous not in USER_SIDE else "assistant"
        if side != expected:
            after = "the system prompt" if previous is None else previous
            raise self.fail(
                where,
                f"turns alternate user and assistant, starting with user: this {role} turn "
                f"follows {after}; put a{'n assistant' if expected == 'assistant' else ' user'} "
                "turn before it"
                + (" (text before a tool call goes in its `text:`)" if role == "tool_use" else ""),
            )

    def tools(self) -> None:
        """Tool names are unique, and every tool call names a declared tool."""
        names = [t.name for t in self.p.tools]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise self.fail(
                    ("tools", i, "name"), f"a second tool named {name!r}: give each its own name"
                )
        turns = self.p.materials.templates
        if isinstance(turns, Templates):
            return
        for i, turn in enumerate(turns):
            if turn.tool_use is not None and turn.tool_use.name not in names:
                declared = f"tools: {', '.join(names)}" if names else "no tools are declared"
                raise self.fail(
                    ("materials", "templates", i, "tool_use", "name"),
                    f"unknown tool {turn.tool_use.name!r} ({declared}): declare it under the "
                    "protocol's `tools:` (name, description, input_schema), as the subject is "
                    "sent it",
                )

    def plant_target(self, turns: list[Turn] | None) -> None:
        """`materials.plant_into` names `document` or a turn with text of its own."""
        into = self.p.materials.plant_into
        if into == "document":
            return
        where = ("materials", "plant_into")
        if turns is None:
            raise self.fail(
                where,
                "plant_into takes a turn's index only when templates are a list of turns: "
                "write `plant_into: document` (the plant goes into {{ document }})",
            )
        if into >= len(turns):
            raise self.fail(
                where,
                f"there is no turn {into}: templates has turns 0 to {len(turns) - 1} (counting "
                "from 0); give the index of the turn that receives the plant",
            )
        turn = turns[into]
        if turn.source is None or turn.role == "tool_use":
            what = "the subject writes" if turn.source is None else "is a tool call"
            raise self.fail(
                where,
                f"turn {into} {what}, so it has no text to plant into: name a system, user, "
                "fixed assistant or tool_result turn (or `document`)",
            )

    def render(self, where: Path_, source: str, ctx: dict[str, object], task: Task) -> str:
        try:
            return render(source, ctx)
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
