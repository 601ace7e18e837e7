"""Terminal pieces shared by commands: the consoles and the checkpoint panel."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel as RichPanel
from rich.prompt import Prompt
from rich.table import Table

if TYPE_CHECKING:
    from orchestrator.panel import CheckpointDecision, Panel

console = Console()
err = Console(stderr=True)


def show_panel(p: Panel) -> None:
    done = Table(box=None, show_header=True, header_style="bold")
    done.add_column("stage")
    done.add_column("status")
    done.add_column("counts")
    for stage, status, counts in p.done:
        done.add_row(stage, status, counts)
    parts: list = [done]
    for name, value in p.numbers.items():
        # numbers hold brackets of their own: intervals, model terms like framing[deu]
        parts.append(escape(f"{name}: {value}"))
    if p.flags:
        flags = Table(
            title="open flags", title_justify="left", header_style="bold", show_lines=True
        )
        flags.add_column("kind")
        flags.add_column("raised by")
        flags.add_column("what they saw")
        flags.add_column("example items")
        for g in p.flags:
            kind = f"[red]{g.kind}[/]" + ("\n[red](blocks --yes)[/]" if g.blocking else "")
            if g.stage == "evaluate":
                who = f"{len(g.raised_by)} evaluator(s)\n" + ", ".join(g.raised_by)
            else:
                who = f"the {g.stage} stage"
            texts = "\n".join(f"- {t}" for t in g.texts[:4])
            examples = "\n".join(f"{i}: “{excerpt}”" for i, excerpt in g.examples)
            flags.add_row(kind, who, texts, examples)
        parts.append(flags)
    u = p.usage
    spent = (
        f"spent so far: {u['calls']:.0f} calls, {u['input_tokens']:.0f} tokens in, "
        f"{u['output_tokens']:.0f} out, ${u['cost_usd']:.4f}"
    )
    if u.get("possibly_paid"):
        spent += (
            f"; {u['possibly_paid']:.0f} more possibly paid (in flight when a process was "
            f"killed or interrupted, never recorded): ≈ ${u['possibly_paid_usd']:.4f}"
        )
    parts.append(spent)
    if p.pending:
        parts.append(
            f"[red]{p.pending}[/]: approving now leaves them unjudged (missing data); "
            f"`research resume {p.run_id}` judges them first"
        )
    if p.detail:
        from rich.syntax import Syntax

        parts.append(Syntax(p.detail, "diff", theme="ansi_dark", word_wrap=True))
    parts.append(f"[bold]next[/]: {p.forecast}")
    console.print(
        RichPanel(Group(*parts), title=f"checkpoint: {p.checkpoint} — {p.run_id}", expand=False)
    )


def terminal_approver(p: Panel) -> CheckpointDecision | None:
    """Ask in the terminal: approve, reject with a reason, or abort (decide later)."""
    # imported here: every command imports this module, and the records stack is slow to load
    from orchestrator.panel import CheckpointDecision

    show_panel(p)
    choice = Prompt.ask(
        "approve (a), reject with a reason (r), or abort for now (b)",
        choices=["a", "r", "b"],
        default="a",
    )
    if choice == "b":
        return None
    note = Prompt.ask("reason" if choice == "r" else "note (optional)", default="")
    if choice == "r" and not note:
        note = Prompt.ask("a rejection needs a reason")
    return CheckpointDecision("approve" if choice == "a" else "reject", note, "terminal")


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
