"""The design, stage by stage: the designer drafts, the loader checks, a human decides.

Each stage ends at a checkpoint (`Approver`): approve, reject with a note (the designer revises
with it, a new call), or edit the stage's YAML by hand (re-checked; an edit with errors comes
back to the same checkpoint with them). Approved stages are kept in the session, so a design
started again resumes where it stopped. The library never prints: the CLI's approver shows the
checkpoint.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from agents.client import LLMClient
from agents.designer.agent import StageBrief, draft_stage
from agents.loop import Retry
from orchestrator.design.draft import (
    Draft,
    add_batch,
    check_stage,
    dump,
    load_draft,
    merge,
    sections_of,
)
from orchestrator.design.feedback import for_stage, stage_yaml
from orchestrator.design.forms import Form, FullForm
from orchestrator.design.output import create, default_out, taken
from orchestrator.design.session import Approval, DesignSession, Rejection
from orchestrator.design.stages import STAGES, DesignStage
from orchestrator.design.targets import MaterialsPlan, materials_of, more, short, wanted
from orchestrator.errors import UserError
from orchestrator.forecast import design_forecast, design_text
from orchestrator.nodes.design import item_of
from orchestrator.protocol.stimuli import build_stimuli

DRAFT_NAME = Path("draft.yaml")
"""The file name errors are reported against while drafting (the output is not written yet)."""


@dataclass(frozen=True)
class StageView:
    """What a checkpoint shows: the stage's draft, and what comes with it."""

    stage: DesignStage
    text: str
    """The stage's sections, as YAML."""
    revision: int
    forecast: str = ""
    """Cost and precision of the full run (the last stage, once the protocol is complete)."""
    errors: list[str] = field(default_factory=list)
    """Problems of a hand edit, to fix before it can be approved."""
    short: list[str] = field(default_factory=list)
    """What the materials lack of the plan's targets after the last batch allowed."""
    warnings: list[str] = field(default_factory=list)
    """Diversity findings the designer did not fix within its attempts: the draft loads, and
    whether such materials will do is the human's call."""


@dataclass(frozen=True)
class StageDecision:
    kind: Literal["approve", "reject", "edit"]
    note: str = ""
    edited: str = ""
    """With `edit`: the stage's sections as the human left them, as YAML."""
    by: str = "human"


Approver = Callable[[StageView], StageDecision]


class DesignFailed(UserError):
    """The designer could not produce a valid stage within its attempts."""

    exit_code = 1


@dataclass(frozen=True)
class Designer:
    """Who drafts, and how."""

    client: LLMClient
    model: str
    params: dict[str, Any]
    max_attempts: int = 4
    retry: Retry = Retry()
    form: Form = FullForm()
    """How stages are asked for: the protocol's sections (full) or content only (compact)."""


async def design(session: DesignSession, designer: Designer, approver: Approver) -> Draft:
    """The whole protocol, every stage approved; resumes the stages approved before."""
    protocol: Draft = {}
    for stage in STAGES:
        approval = session.approved(stage)
        if approval is None:
            approval = await _stage(session, designer, approver, stage, protocol)
            session.approve(stage, approval)
        protocol = merge(protocol, stage, approval.sections)
    return protocol


async def _stage(
    session: DesignSession,
    designer: Designer,
    approver: Approver,
    stage: DesignStage,
    so_far: Draft,
) -> Approval:
    while True:
        rejections = session.rejections(stage)
        last = rejections[-1] if rejections else Rejection("", "", "")
        revision = len(rejections)
        warned: list[str] = []
        sections = await _draft(
            session,
            designer,
            stage,
            so_far,
            revision,
            last.note,
            last.draft,
            warned,
            tuple(r.note for r in rejections[:-1]),
        )
        if warned:  # what the whole stage's materials still have, once (not each call's)
            plan = _plan(session, stage)
            warned = check_stage(so_far, stage, sections, DRAFT_NAME, plan=plan)
        lacking = short(_plan(session, stage), materials_of(sections))
        if lacking:
            session.log.append(stage.name, "designer", "short", "; ".join(lacking))
        forecast = _forecast(so_far, stage, sections)
        view = StageView(
            stage, stage_yaml(sections), revision, forecast, short=lacking, warnings=warned
        )
        while True:
            decision = approver(view)
            if decision.kind == "approve":
                return Approval(sections, decision.by, decision.note)
            if decision.kind == "reject":
                break
            edited, errors = _edited(
                so_far, stage, decision.edited, _plan(session, stage), designer.form
            )
            if not errors:
                session.log.append(stage.name, decision.by, "edit", "edited the draft by hand")
                note = decision.note or "edited by hand"
                return Approval(edited, decision.by, note)
            view = StageView(
                stage, decision.edited, revision, view.forecast, errors, view.short, view.warnings
            )
        session.reject(stage, Rejection(decision.note, stage_yaml(sections), decision.by))


async def _draft(
    session: DesignSession,
    designer: Designer,
    stage: DesignStage,
    so_far: Draft,
    revision: int,
    note: str,
    rejected: str,
    warned: list[str],
    earlier: tuple[str, ...] = (),
) -> Draft:
    """The stage's sections: the first call's, with each further batch's tasks and plants;
    findings accepted on a call's last attempt are added to `warned`."""
    sections: Draft = {}
    plan = _plan(session, stage)
    for batch in range(stage.batches):
        if batch and not more(plan, sections, batch):
            break
        base = merge(so_far, stage, sections) if batch else so_far
        shown, example, was = designer.form.shown(base, session.example, rejected)
        brief = StageBrief(
            question=session.question,
            stage=stage.name,
            title=stage.title,
            so_far=shown,
            example=example,
            note=note,
            earlier=earlier,
            rejected=was,
            revision=revision,
            batch=batch,
            wanted=wanted(plan, materials_of(sections) if batch else None),
        )
        schema = designer.form.schema(stage, base, batch)
        if batch == 0:
            sections = await _call(session, designer, stage, brief, schema, so_far, warned)
        else:
            added = await _call(session, designer, stage, brief, schema, so_far, warned, sections)
            sections = add_batch(sections, added)
    return sections


async def _call(
    session: DesignSession,
    designer: Designer,
    stage: DesignStage,
    brief: StageBrief,
    schema: dict[str, Any],
    so_far: Draft,
    warned: list[str],
    first: Draft | None = None,
) -> Draft:
    """One forced call, its drafts checked as part of the protocol; `first`: the stage's
    sections so far, which a further batch's tasks and plants are added to."""

    base = so_far if first is None else merge(so_far, stage, first)

    def check(draft: dict[str, Any], last: bool) -> list[str]:
        try:
            own = designer.form.sections(stage, base, draft, brief.batch)
        except ValueError as e:
            errors = [str(e)]
        else:
            sections = own if first is None else add_batch(first, own)
            plan = _plan(session, stage)
            new = _ids(own) if first is not None else None
            errors = check_stage(
                so_far, stage, sections, DRAFT_NAME, plan=plan, batch=brief.batch, new=new
            )
            if errors and last and stage.diversity:
                # the draft loads; only the materials checks object: the human decides
                if not check_stage(so_far, stage, sections, DRAFT_NAME, diversity=False):
                    warned.extend(errors)
                    text = "Taken on the last attempt; the materials checks still say:\n"
                    session.log.append(stage.name, "designer", "warning", text + "\n".join(errors))
                    return []
        if errors:
            session.log.append(stage.name, "loader", "error", "\n".join(errors))
        return errors

    result = await draft_stage(
        designer.client,
        brief,
        schema=schema,
        check=check,
        model=designer.model,
        params=designer.params,
        max_attempts=designer.max_attempts,
        retry=designer.retry,
    )
    if result.sections is None:
        session.log.append(stage.name, "designer", "failed", result.error or "")
        raise DesignFailed(f"stage {stage.name} ({brief.tool}): {result.error}")
    text = f"{brief.tool} accepted after {len(result.calls)} call(s)"
    session.log.append(stage.name, "designer", "draft", text)
    return designer.form.sections(stage, base, result.sections, brief.batch)


def _ids(batch: Draft) -> set[str]:
    """The ids of a further batch's tasks and plants: its near-duplicates are its own to fix
    (a pair among earlier batches was found, and taken or fixed, there)."""
    return {str(x.get("id")) for name in ("tasks", "plants") for x in batch.get(name) or []}


def _plan(session: DesignSession, stage: DesignStage) -> MaterialsPlan | None:
    """The plan's materials plan, for the stage that drafts the materials."""
    return session.materials_plan() if stage.diversity else None


def _edited(
    so_far: Draft, stage: DesignStage, text: str, plan: MaterialsPlan | None, form: Form
) -> tuple[Draft, list[str]]:
    try:
        sections = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return {}, [f"the edit is not YAML: {e}"]
    if not isinstance(sections, dict):
        return {}, ["the edit must be a mapping of the stage's sections"]
    sections = {k: sections.get(k) for k in sections_of({}, stage)}
    errors = check_stage(so_far, stage, sections, DRAFT_NAME, shown=text, plan=plan)
    later = [] if errors else form.check(stage, so_far, sections, DRAFT_NAME)
    return sections, errors or for_stage(later, stage, text)


def _forecast(so_far: Draft, stage: DesignStage, sections: Draft) -> str:
    protocol = merge(so_far, stage, sections)
    if stage is not STAGES[-1]:
        return ""
    loaded = load_draft(protocol, DRAFT_NAME).protocol
    items = [item_of(s) for s in build_stimuli(loaded, pilot=False)]
    return design_text(design_forecast(loaded, items), loaded.analysis.primary)


COMPACT_NOTE = (
    "Compact form (for a small model): the model wrote the content; research design wrote the "
    "structure (templates, contrasts, verdict, rubric frame) and kept the settings of {base}."
)


def header(
    session: DesignSession, approvals: list[tuple[str, Approval]], yes: bool, form: str = "full"
) -> str:
    """The output's header comment: how it was made."""
    calls, cost = session.spent()
    day = dt.datetime.now(dt.UTC).date().isoformat()
    lines = [
        f"Drafted by `research design` with {session.model} on {day}: {calls} calls, "
        f"${cost:.4f} (ledger: {session.path}).",
        f"Question: {session.question}",
    ]
    if form == "compact":
        lines.append(COMPACT_NOTE.format(base=session.example_name or "the init skeleton"))
    elif session.example_name:
        lines.append(f"Style and schema example: {session.example_name}")
    if yes:
        lines.append("Every stage approved with --yes: without human review.")
    for name, a in approvals:
        lines.append(f"Stage {name}: approved by {a.by}" + (f" ({a.note})" if a.note else ""))
    return "\n".join(lines)


def write(
    session: DesignSession, protocol: Draft, out: Path | None, yes: bool, form: str = "full"
) -> Path:
    """The protocol file, validated as written, at `out` or (without it) at
    `protocols/<plan id>.yaml` or the first free `<plan id>-N.yaml`; never over a file."""
    if out is not None and out.exists():
        raise taken(out)
    approvals = [(s.name, a) for s in STAGES if (a := session.approved(s)) is not None]
    text = dump(protocol, header(session, approvals, yes, form))
    load_draft(protocol, out or default_out(protocol["id"]))
    path = create(text, out, protocol["id"])
    session.written(path)
    return path
