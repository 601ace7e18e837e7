"""research label: a researcher's own verdicts on a blinded, stratified sample of a run's items,
for checking the judges against a human.

research label RUN [--n 50] [--by NAME]      # in the terminal, one item at a time, resumable
research label RUN --from labels.jsonl       # the same labels from a file (pipelines, --yes)
research report RUN                          # fold them into analysis.json and the report
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from orchestrator.cli.run import RunsDir
from orchestrator.cli.ui import console, interactive
from orchestrator.errors import UserError

if TYPE_CHECKING:
    from orchestrator.labels import LabelSession
    from orchestrator.protocol.schema import VerdictField

KEYS = "s skips a field · q quits (every answer so far is kept) · ? shows the rubric and item again"


class _Quit(Exception):
    """The researcher typed q (or closed the input)."""


_SKIP = object()


def label_cmd(
    run: Annotated[str, typer.Argument(help="Run id (or path to a run directory).")],
    n: Annotated[
        int,
        typer.Option(
            "--n",
            min=1,
            help="Items in the sample (a larger --n later keeps the items already labelled).",
        ),
    ] = 50,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Read labels from a JSONL file instead of asking: one line per item, "
            '{"item_id": ..., "fields": {"detected": true, ...}}; checked whole, every bad '
            "line named, nothing stored if one is bad.",
            dir_okay=False,
        ),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who labels [default: your login name].")
    ] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Label a blinded sample of a run's items yourself, to check the judges against a human.

    Shows one item at a time as the evaluators saw it (the input, the task fields they were
    shown, the response; never its condition, cell or the judges' verdicts) and asks each
    verdict field in turn: bool y/n, enum and ordinal by number, int and float as a number, str
    as text. s skips a field, q quits, ? shows the rubric; every answer is stored as it is
    given, so quitting or Ctrl-C loses nothing and the next `research label RUN` goes on where
    you stopped. The sample is seeded and stratified by cell and by the judges' verdict on the
    primary outcome, so rare positives get labelled. `research report RUN` then sets the judges
    against your labels (κ, sensitivity, specificity) and corrects the rates for their error.
    """
    from orchestrator.labels import LabelSession, import_labels
    from orchestrator.rundir import RunDir, runs_root

    who = by or _login()
    with RunDir.open(runs_root(runs_dir), run) as rd:
        if from_file is not None:
            console.print(import_labels(rd, from_file, who), highlight=False)
            console.print(
                f"next: research report {rd.id}  (folds them into the analysis)", highlight=False
            )
            return
        if not interactive():
            raise UserError(
                "research label asks in a terminal, and there is none here; give the labels as "
                f"a file instead: research label {rd.id} --from labels.jsonl"
            )
        session = LabelSession(rd, n, who)
        try:
            _label(session)
        except KeyboardInterrupt:
            console.print(
                "\n[yellow]interrupted[/]: every answer given so far is kept; "
                f"continue with `research label {rd.id}`"
            )
            console.print(session.finish(), highlight=False)
            raise typer.Exit(130) from None
        console.print(session.finish(), highlight=False)
        if session.todo():
            console.print(f"continue with: research label {rd.id}")
        console.print(
            f"next: research report {rd.id}  (folds the labels into the analysis)", highlight=False
        )


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "researcher"


def _label(s: LabelSession) -> None:
    todo = s.todo()
    done = len(s.sample) - len(todo)
    console.print(
        f"[bold]Labelling {escape(s.run.id)}[/] as {escape(s.by)}: {len(s.sample)} items "
        f"sampled, {done} labelled already. Each item is shown as the evaluators saw it, "
        "without its condition and without their verdicts."
    )
    _rubric(s)
    if not todo:
        console.print("Every item of the sample is labelled (a larger --n adds more).")
        return
    try:
        for item_id in todo:
            _show(s, item_id)
            for field in s.left(item_id):
                answer = _ask(s, item_id, field, s.fields[field])
                s.record(item_id, field, None if answer is _SKIP else answer, answer is _SKIP)
    except _Quit:
        return


def _rubric(s: LabelSession) -> None:
    console.print(Panel(Text(s.rubric.strip()), title="rubric", title_align="left"))
    console.print(f"[dim]{KEYS}[/]")


def _show(s: LabelSession, item_id: str) -> None:
    view = s.view(item_id)
    parts: list[Any] = [Text("Input", style="bold"), Text(view.input)]
    for name, value in view.task_fields.items():
        parts += [Text(f"\nTask field: {name}", style="bold"), Text(value)]
    parts += [Text("\nResponse", style="bold"), Text(view.response)]
    title = f"item {s.position(item_id)} of {len(s.sample)}"
    console.print(Panel(Group(*parts), title=title, title_align="left"))


def _ask(s: LabelSession, item_id: str, name: str, spec: VerdictField) -> Any:
    from orchestrator.labels.values import BadValue, keys, parse

    if spec.description:
        console.print(Text(" ".join(spec.description.split()), style="dim"))
    prompt = f"[bold]{escape(name)}[/] [cyan]({escape(keys(spec))})[/]: "
    while True:
        try:
            text = console.input(prompt)
        except EOFError:
            raise _Quit from None
        command = text.strip()
        if command == "q":
            raise _Quit
        if command == "s":
            return _SKIP
        if command == "?":
            _rubric(s)
            _show(s, item_id)
            continue
        try:
            return parse(name, spec, text)
        except BadValue as e:
            console.print(f"[red]{escape(str(e))}[/] — {KEYS}")
