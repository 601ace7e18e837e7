"""Start (or resume) a design: the session, the designer's client, the stages, the file.

from orchestrator.design.start import start_design
start_design("Does ...?", example=Path("protocols/deu.yaml"), approver=...)
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from agents.client import LLMClient
from agents.loop import Retry
from orchestrator.context import endpoint
from orchestrator.design.flow import Approver, Designer, StageDecision, StageView, design, write
from orchestrator.design.forms import form_named
from orchestrator.design.output import taken
from orchestrator.design.session import DesignSession
from orchestrator.errors import UserError
from orchestrator.protocol.base import ModelRef
from orchestrator.settings import Settings
from orchestrator.worker import worker_for

PARAMS = {"max_tokens": 16000, "temperature": 0.7}
"""A whole stage is one tool call: the materials of a realistic design run long."""
TIMEOUT_S = 900.0
"""Seconds a designer call to the API may take: 16000 tokens at ~60 a second, with room."""
OFFLINE_PARAMS = {"max_tokens": 4000, "temperature": 0.7}
"""SmolLM2 has 8192 tokens of context: a compact stage's prompt and schema take under 2,000, a
retry adds the refused draft and the errors, and a bounded draft (compact.py) fits 4,000."""


def approve_all(view: StageView) -> StageDecision:
    """--yes: every stage approved, on the record as without human review."""
    note = "without human review"
    if view.warnings:
        n = len(view.warnings)
        note += f"; taken with {n} materials finding(s) not fixed, in the design's LOG.md: "
        note += view.warnings[0].split(":", 1)[0] + (" ..." if n > 1 else "")
    return StageDecision("approve", note, by="--yes")


def start_design(
    question: str,
    *,
    example: Path | None = None,
    out: Path | None = None,
    runs_dir: Path | None = None,
    offline: bool = False,
    form: str | None = None,
    approver: Approver = approve_all,
    yes: bool = False,
    settings: Settings | None = None,
) -> Path:
    """Draft, check and (with `approver`) approve every stage; write the protocol to `out`, or
    by default to `protocols/<plan id>.yaml` (`<plan id>-2.yaml`, ... when taken).
    `form`: `full` or `compact` (default: compact offline, where the model is small)."""
    settings = settings or Settings.from_env()
    if out is not None and out.exists():
        raise taken(out)  # before any call; without --out, the plan's id names the file
    example_text = _read(example) if example else ""
    try:
        drafting = form_named(form or ("compact" if offline else "full"), example_text)
    except ValueError as e:
        raise UserError(str(e)) from None
    if offline:
        ref = ModelRef(provider="local", model=settings.local_model)
    else:
        ref = ModelRef(provider="anthropic", model=settings.design_model)
        if settings.api_key() is None:
            raise UserError("ANTHROPIC_API_KEY is not set (or design offline with --offline)")
        settings = settings.model_copy(update={"timeout_s": max(settings.timeout_s, TIMEOUT_S)})
    root = runs_dir or settings.runs_dir
    session = DesignSession.open(
        root, question, example_text, str(example or ""), ref.model, drafting.name
    )
    retry = Retry(settings.retry_passes, settings.retry_wait_s)
    params = OFFLINE_PARAMS if offline else PARAMS
    with contextlib.ExitStack() as stack:
        stack.callback(session.close)
        if offline:  # the worker at RESEARCH_WORKER_URL, or one started for this design
            log_path = session.path / "worker.log"
            url = stack.enter_context(
                worker_for(session.log, log_path, ref.model, settings, "design")
            )
            ref = ref.model_copy(update={"base_url": url})

        async def go() -> Path:
            async with LLMClient(endpoint(ref, settings), session.records, session.sha) as c:
                designer = Designer(c, ref.model, params, retry=retry, form=drafting)
                protocol = await design(session, designer, approver)
            return write(session, protocol, out, yes, drafting.name)

        return asyncio.run(go())


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from e
