"""`research`: run LLM behaviour experiments from a YAML protocol, resumably.

research validate protocols/deu.yaml
research run protocols/deu.yaml --pilot --offline
research status
research label RUN
research view
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from orchestrator.cli import (
    amend,
    compare,
    design,
    followup,
    init,
    label,
    probes,
    program,
    report,
    run,
    status,
    validate,
    view,
    worker,
)
from orchestrator.errors import ProtocolError, UserError

app = typer.Typer(
    name="research",
    help="Run LLM behaviour experiments from a YAML protocol: generate stimuli, call subject "
    "models, judge responses with evaluator agents, analyse, report — resumable at any point.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: rich markup ate "[default: …]" in help strings, kept the docstrings'
    # source line breaks and put <bool> beside every flag (typer 0.29)
    rich_markup_mode=None,
)
# In the order a researcher meets them; each with a one-line summary for the command list
# (click cuts a docstring's first sentence off at the terminal's width with "...").
COMMANDS = (
    ("design", design.design_cmd, "Draft a protocol from a question, stage by stage."),
    ("init", init.init_cmd, "Write a new protocol file that validates as written."),
    ("validate", validate.validate_cmd, "Check a protocol and preview its cells; spends nothing."),
    ("run", run.run_cmd, "Start a run of a protocol."),
    ("resume", run.resume_cmd, "Continue a run after a decision, a Ctrl-C or a crash."),
    ("approve", run.approve_cmd, "Decide the checkpoint a run is waiting at."),
    ("status", status.status_cmd, "List the runs, or show where one run stands."),
    ("view", view.view_cmd, "Browse runs in a web page, from a rate to a response."),
    ("report", report.report_cmd, "Recompute a run's analysis and rewrite its report."),
    ("label", label.label_cmd, "Label a blinded sample yourself, to calibrate the judge."),
    ("amend", amend.amend_cmd, "Amend a run's pre-registered analysis, on the record."),
    ("compare", compare.compare_cmd, "Put two runs' main results side by side."),
    ("program", program.program_cmd, "Create, show or list research programmes across runs."),
    ("next", followup.next_cmd, "Have an agent propose follow-ups to a finished run; pick one."),
    ("worker", worker.worker_cmd, "Serve a local model and the truesight probes."),
)
for name, command, summary in COMMANDS:
    app.command(name, short_help=summary)(command)
app.add_typer(probes.app, name="probes")

err = Console(stderr=True)
# a run interrupted while it was driven says so itself, naming the run (cli/run.py)
INTERRUPTED = "[yellow]interrupted[/]"


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except ProtocolError as e:
        err.print(f"[bold red]protocol error[/] {e.report()}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except UserError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print(INTERRUPTED)
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as e:
        # usage errors (click's, vendored by typer): print them as click would, no traceback
        if callable(getattr(e, "show", None)) and isinstance(getattr(e, "exit_code", None), int):
            e.show()
            sys.exit(e.exit_code)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
