"""research validate: check a protocol and preview its cells, without running anything."""

from __future__ import annotations

from collections import Counter
from itertools import zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.ui import console

if TYPE_CHECKING:
    from orchestrator.protocol.schema import Scalar
    from orchestrator.protocol.stimuli import Stimulus


def validate_cmd(
    protocol: Annotated[Path, typer.Argument(help="The protocol YAML file.")],
    pilot: Annotated[bool, typer.Option(help="Preview the pilot size.")] = False,
    show: Annotated[int, typer.Option(help="Print this many rendered stimuli.")] = 0,
    offline: Annotated[
        bool, typer.Option(help="Preview the design as `research run --offline` would run it.")
    ] = False,
) -> None:
    """Check a protocol (exit 2 with file:line: field: message if broken) and preview it."""
    # imported here: every command's module is imported for any command (`status` among them),
    # and these bring the records store and the LLM client with them
    from orchestrator.context import as_run
    from orchestrator.nodes.conversation import judged_text
    from orchestrator.protocol import load_protocol
    from orchestrator.protocol.stimuli import build_stimuli, n_per_cell, shown_task_fields
    from orchestrator.records import Turn

    loaded = load_protocol(protocol)
    p = as_run(loaded.protocol, offline=offline, local_model=None)
    stimuli = build_stimuli(p, pilot=pilot)
    per_cell = Counter(s.cell.key for s in stimuli)
    table = Table(title=f"{p.id}: {len(per_cell)} cells, {len(stimuli)} stimuli")
    table.add_column("cell")
    table.add_column("stimuli", justify="right")
    table.add_column("tasks", justify="right")
    table.add_column("planted", justify="right")
    for cell, n in per_cell.items():
        mine = [s for s in stimuli if s.cell.key == cell]
        planted = sum(1 for s in mine if s.plant_id)
        table.add_row(cell, str(n), str(len({s.task_id for s in mine})), str(planted))
    console.print(table)
    m, ev = p.materials, p.evaluation
    console.print(
        f"{len(m.tasks)} tasks, {len(m.plants)} plants ({len({x.kind for x in m.plants})} kinds), "
        f"{n_per_cell(p, pilot)} per cell; {ev.evaluators} evaluators × batches of "
        f"{ev.batch_size}; checkpoints: {', '.join(p.checkpoints) or 'none'}"
    )
    if offline:
        console.print(
            f"offline: the subjects and the judge are the local model {p.evaluation.judge.model}",
            highlight=False,
        )
    shown = shown_task_fields(p)
    for s in spread_over_cells(stimuli, show):
        console.rule(s.item_id)
        if s.turns:
            said = judged_text(tuple(Turn(*t) for t in s.turns), [GENERATED] * len(s.turns))
            blind = judged_text(tuple(Turn(*t) for t in s.blind_turns), [GENERATED] * len(s.turns))
            subject, judged = f"[bold]conversation[/]\n{escape(said)}", blind
        else:
            subject, judged = f"[bold]user[/]\n{escape(s.user)}", s.blind_user
        console.print(f"[bold]system[/]\n{escape(s.system)}\n{subject}", highlight=False)
        console.print(_judges_view(judged, shown[s.task_id], bool(s.turns)), highlight=False)
    console.print(f"[green]ok[/] {protocol} (sha256 {loaded.sha256[:12]})")


def spread_over_cells(stimuli: list[Stimulus], n: int) -> list[Stimulus]:
    """Up to `n` stimuli taken in turn from each cell, in cell order: one of every cell first
    (planted and unplanted, each framing, each subject), then a second of each, and so on."""
    by_cell: dict[str, list[Stimulus]] = {}
    for s in stimuli:
        by_cell.setdefault(s.cell.key, []).append(s)
    rounds = zip_longest(*by_cell.values())
    return [s for r in rounds for s in r if s is not None][: max(n, 0)]


ABSENT = "(absent: this task has no such field)"


GENERATED = "(the subject writes this turn when the run calls it)"


def _judges_view(blind: str, fields: dict[str, Scalar | None], conversation: bool) -> str:
    """What evaluators are given of the item besides the response: the user message (or the
    conversation) without any blinded level, and the task fields the protocol shows them."""
    what = "conversation" if conversation else "user message"
    out = f"[bold]evaluators see: {what} (blinded)[/]\n{escape(blind)}"
    if fields:
        out += "\n[bold]evaluators see: task fields (evaluation.show_task_fields)[/]"
    for name, value in fields.items():
        shown = ABSENT if value is None else str(value)
        out += f"\n{name}: {escape(shown)}"
    return out
