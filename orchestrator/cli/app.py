"""`research`: run LLM behaviour experiments from a YAML protocol, resumably.

research validate protocols/deu.yaml
research run protocols/deu.yaml --pilot --offline
research status
research label RUN
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from orchestrator.cli import (
    amend,
    compare,
    label,
    probes,
    report,
    run,
    status,
    validate,
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
)
app.command("run")(run.run_cmd)
app.command("resume")(run.resume_cmd)
app.command("approve")(run.approve_cmd)
app.command("status")(status.status_cmd)
app.command("report")(report.report_cmd)
app.command("label")(label.label_cmd)
app.command("amend")(amend.amend_cmd)
app.command("compare")(compare.compare_cmd)
app.command("validate")(validate.validate_cmd)
app.command("worker")(worker.worker_cmd)
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
