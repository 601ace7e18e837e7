"""Every command's --help reads as written: each help string shown whole (a "[default: x]" in
it included), no stray " ." where markup ate a bracket, no type junk on flags, and paragraphs
wrapped to the terminal rather than broken where the source line ended.

The commands are found by walking the click app typer builds, so a new one is checked too."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from orchestrator.cli.app import app

WIDTHS = (100, 80)
SECTION = re.compile(r"^\S.*:$")  # "Options:", "Arguments:", "Commands:"


Command = typer.main.TyperCommand | TyperGroup


def commands(
    command: Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Command]]:
    """Every command and group under `command`, with the arguments that reach it."""
    yield path, command
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            yield from commands(sub, (*path, name))


ALL = list(commands(typer.main.get_command(app)))


def render(path: tuple[str, ...], width: int) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.output


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def wrapped_early(output: str) -> list[str]:
    """Lines of one paragraph or one option's help that end although the next line's first word
    would have fit: the source's own line breaks showing through."""
    lines = [line.rstrip() for line in output.splitlines()]
    width = max(len(line) for line in lines)
    early, section = [], ""
    for line, after in zip(lines, lines[1:], strict=False):
        if SECTION.match(line):
            section = line
        if section == "Commands:" or not line.strip() or not after.strip() or line == section:
            continue  # a group's list of commands: one row each, cut short by click with "..."
        indent, next_indent = (len(s) - len(s.lstrip()) for s in (line, after))
        if indent != next_indent or (section and next_indent <= 2):
            continue  # a new argument or option row, or one's help starting under its names
        if len(line) + 1 + len(after.split()[0]) <= width:
            early.append(line)
    return early


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(path) for path, _ in ALL}
    assert {"", "run", "worker", "probes", "probes train", "init"} <= names


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("path", "command"), ALL, ids=[" ".join(p) or "research" for p, _ in ALL])
def test_help_reads_as_written(path: tuple[str, ...], command: Command, width: int) -> None:
    out = render(path, width)
    shown = squeeze(out)
    assert "<bool>" not in out, out
    assert not re.search(r"\S\s+\.(\s|$)", out), out  # "live ." where "[default: …]" was eaten
    docstring = (command.help or "").partition("\f")[0]
    assert squeeze(docstring) in shown, out
    for param in command.params:
        help_text = getattr(param, "help", None)
        if help_text:
            assert squeeze(help_text) in shown, f"{param.name}'s help is not shown whole:\n{out}"
    assert wrapped_early(out) == [], out
