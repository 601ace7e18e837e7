"""`research next RUN`: follow-up experiments to a finished run, proposed by an agent
(agents/followups.py), each checked by merging it into the run's protocol and loading that with
the real protocol loader, with a forecast of its precision and cost from forecast.py (not the
model's words alone). The person picks one or none; the pick is written as a new protocol file
(never over an existing one) and the choice goes into the run's LOG.md and its programme's.

The proposals are kept in artifacts/next.json and next.md, so a choice can be made later
(`research next RUN --pick N`); asking again replays the proposer's calls from the ledger.
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from agents.followups import (
    COMPACT,
    ONLINE,
    Changes,
    FollowUp,
    NextBrief,
    NextResult,
    propose,
)
from agents.loop import retry_note
from memory import OpenQuestion, write_atomic
from orchestrator import program
from orchestrator.analysis import load_analysis
from orchestrator.context import RunContext, as_run
from orchestrator.design.compact import unique
from orchestrator.design.compact_content import CompactTask
from orchestrator.errors import ProtocolError, UserError
from orchestrator.forecast import design_forecast, design_text
from orchestrator.nodes.design import item_of
from orchestrator.nodes.qualitative import render_statistics
from orchestrator.protocol.loader import load_protocol_text
from orchestrator.protocol.schema import ModelRef, Protocol
from orchestrator.protocol.stimuli import build_stimuli
from orchestrator.rundir import RunDir
from orchestrator.settings import Settings
from orchestrator.worker import local_worker


@dataclass(frozen=True)
class Checked:
    """A follow-up that loads: its merged protocol and the forecast for it at full size."""

    followup: FollowUp
    text: str
    forecast: str


@dataclass(frozen=True)
class Proposed:
    run_id: str
    followups: list[Checked]
    error: str | None
    cached: bool
    calls: int


def merge(base: Any, patch: Any) -> Any:
    """`patch` deep-merged into `base`: mappings key by key, anything else replaced."""
    if not (isinstance(base, dict) and isinstance(patch, dict)):
        return copy.deepcopy(patch)
    out = dict(base)
    for key, value in patch.items():
        out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
    return out


def merged_text(run: RunDir, f: FollowUp) -> str:
    """The run's protocol with the follow-up's changes and id, as YAML; ValueError when the
    changes are no YAML mapping."""
    try:
        changes = yaml.safe_load(f.changes)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} of changes" if mark else ""
        raise ValueError(f"changes: not YAML{where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(changes, dict):
        raise ValueError("changes: must be a YAML mapping of protocol sections")
    base = yaml.safe_load(run.path("protocol.yaml").read_text(encoding="utf-8"))
    data = merge(base, {k: v for k, v in changes.items() if k != "id"})
    data["id"] = f.id
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def check(run: RunDir, f: FollowUp) -> tuple[Checked | None, list[str]]:
    """Merge and load the follow-up, as if it were a file beside the run's protocol (its data
    files are frozen there); the errors as `file:line: field: message` with the line's text."""
    if f.id == run.manifest.protocol_id:
        return None, [f"id: {f.id!r} is this run's protocol id; give the follow-up its own"]
    try:
        text = merged_text(run, f)
    except ValueError as e:
        return None, [str(e)]
    path = run.path(f"{f.id}.yaml")
    try:
        loaded = load_protocol_text(text, path)
    except ProtocolError as e:
        lines = text.splitlines()
        errors = []
        for x in [e, *e.others]:
            shown = f" (`{lines[x.line - 1].strip()}`)" if x.line and x.line <= len(lines) else ""
            errors.append(f"{x}{shown}".replace(str(path), f"{f.id}.yaml (merged)"))
        return None, errors
    p = loaded.protocol
    items = [item_of(s) for s in build_stimuli(p, pilot=False)]
    return Checked(f, text, design_text(design_forecast(p, items), p.analysis.primary)), []


def brief(run: RunDir, sizes_chars: int) -> NextBrief:
    p = run.loaded.protocol
    summary = run.path("SUMMARY.md")
    report = run.path("report.md")
    analysis = run.path("artifacts", "analysis.json")
    data = yaml.safe_load(run.path("protocol.yaml").read_text(encoding="utf-8"))
    if isinstance(data.get("materials"), dict):  # long, and changed by hand rather than here
        shown = {k: f"({len(v)} entries, not shown)" for k, v in data["materials"].items()}
        data["materials"] = shown
    return NextBrief(
        title=p.title,
        question=p.question.strip(),
        protocol_id=p.id,
        summary=summary.read_text().strip() if summary.exists() else "(none)",
        statistics=render_statistics(load_analysis(analysis)) if analysis.exists() else "(none)",
        report=report.read_text()[:sizes_chars] if report.exists() else "(none)",
        protocol=yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100),
    )


def compact_changes(run: RunDir) -> Changes:
    """What a small model may change, as a schema: the full-size n, the wording of the level
    texts the protocol has (each optional), and one more task; every reference fixed by
    the grammar, so whatever it writes merges into a protocol the loader can take."""
    data = yaml.safe_load(run.path("protocol.yaml").read_text(encoding="utf-8"))
    design, materials = data.get("design") or {}, data.get("materials") or {}
    texts = materials.get("level_text") or {}
    text = {"type": "string", "minLength": 1, "maxLength": 300}
    level_text = {
        factor: {
            "type": "object",
            "properties": {level: text for level in levels},
            "additionalProperties": False,
        }
        for factor, levels in texts.items()
    }
    n = {
        "type": "integer",
        "minimum": design.get("pilot_n_per_cell", 2),
        "maximum": 1000,
        "description": f"Stimuli per cell at full size (this run's: {design.get('n_per_cell')}).",
    }
    # a task the model adds has no `fields`: offered only where the templates read none
    adds = "fields" not in json.dumps(materials.get("templates"))
    most = 1 if adds else 0
    schema = {
        "type": "object",
        "properties": {
            "n_per_cell": n,
            "level_text": {
                "type": "object",
                "properties": level_text,
                "additionalProperties": False,
                "description": "Level texts reworded: only those you change.",
            },
            "add_tasks": {
                "type": "array",
                "items": CompactTask.model_json_schema(),  # inline: this schema is nested
                "maxItems": most,
                "description": "A new task, unlike the protocol's, or none.",
            },
        },
        "required": ["n_per_cell", "level_text", "add_tasks"],
        "additionalProperties": False,
    }

    def to_yaml(value: dict[str, Any]) -> str:
        patch: dict[str, Any] = {"design": {"n_per_cell": value.get("n_per_cell")}}
        reworded = {f: dict(v) for f, v in (value.get("level_text") or {}).items() if v}
        added = [{k: v for k, v in t.items() if v != ""} for t in value.get("add_tasks") or []]
        taken = frozenset(str(t.get("id")) for t in materials.get("tasks") or [])
        ids = unique([str(t.get("id")) for t in added], taken, "-")
        added = [{**t, "id": i} for t, i in zip(added, ids, strict=True)]
        more: dict[str, Any] = {}
        if reworded:
            more["level_text"] = reworded
        if added:
            more["tasks"] = [*(materials.get("tasks") or []), *added]
        if more:
            patch["materials"] = more
        return yaml.safe_dump(patch, sort_keys=False, allow_unicode=True, width=100)

    return Changes(schema, to_yaml)


def model_of(protocol: Protocol) -> ModelRef:
    """The analyst's model (the judge's unless the protocol names one): it read the run."""
    q = protocol.analysis.qualitative
    return q.model if q is not None and q.model is not None else protocol.evaluation.judge


def propose_next(run: RunDir, *, offline: bool = False) -> Proposed:
    """Ask for follow-ups to `run` (finished) and keep the valid ones in artifacts/next.json."""
    if run.manifest.status not in ("complete", "rejected"):
        raise UserError(
            f"{run.id} has not ended (status: {run.manifest.status}): finish it first with "
            f"`research resume {run.id}`"
        )
    settings = Settings.from_env()
    local = run.manifest.local_model or settings.local_model
    protocol = as_run(run.loaded.protocol, offline=offline, local_model=local)
    ref = protocol.evaluation.judge if offline else model_of(protocol)
    sizes = COMPACT if ref.provider == "local" else ONLINE
    ctx = RunContext(run, protocol, given_settings=settings)
    checked: dict[str, Checked] = {}

    def checker(f: FollowUp) -> list[str]:
        ok, errors = check(run, f)
        if ok is not None:
            checked[f.id] = ok
        return errors

    async def ask() -> NextResult:
        async with ctx.client(ref) as client:
            return await propose(
                client,
                brief(run, sizes.brief_chars),
                checker,
                model=ref.model,
                params=ref.params.model_dump(),
                sizes=sizes,
                changes=compact_changes(run) if sizes is COMPACT else None,
                # the protocol's own: offline, as_run allows the judge one attempt
                max_attempts=run.loaded.protocol.evaluation.max_attempts,
                retry=ctx.retry,
                on_retry=lambda result, n, wait: ctx.log(
                    "next", "retry", retry_note("proposer", result, n, ctx.retry, wait), "proposer"
                ),
            )

    if ref.provider == "local":
        with local_worker(run, protocol, settings) as url:
            if url != settings.worker_url:
                ctx.given_settings = settings.model_copy(update={"worker_urls": (url,)})
            result = ctx.run_async(ask())
    else:
        result = ctx.run_async(ask())
    valid = [checked[f.id] for f in result.proposal.followups] if result.proposal else []
    proposed = Proposed(run.id, valid, result.error, result.cached, len(result.calls))
    _write(run, proposed)
    if not result.cached:  # asked again, the ledger answers: nothing new to record
        titles = "\n".join(
            f"{n}. {c.followup.title} ({c.followup.id})" for n, c in enumerate(valid, 1)
        )
        text = f"Follow-ups proposed by {ref.model}:\n{titles}" if valid else str(result.error)
        run.log.append("next", "proposer", "proposed" if valid else "error", text)
    return proposed


def _write(run: RunDir, proposed: Proposed) -> None:
    data = [asdict(c) | {"followup": c.followup.model_dump()} for c in proposed.followups]
    out = {"run_id": run.id, "error": proposed.error, "followups": data}
    write_atomic(run.path("artifacts", "next.json"), json.dumps(out, indent=2) + "\n")
    write_atomic(run.path("artifacts", "next.md"), as_markdown(proposed))


def as_markdown(proposed: Proposed) -> str:
    parts = [f"# Follow-ups to {proposed.run_id}\n"]
    if proposed.error:
        parts.append(f"No valid proposal: {proposed.error}\n")
    for n, c in enumerate(proposed.followups, 1):
        f = c.followup
        parts.append(
            f"## {n}. {f.title} (`{f.id}`, {f.kind})\n\n{f.reason}\n\n"
            f"Changes:\n\n```yaml\n{f.changes.strip()}\n```\n\n"
            f"The proposer's forecast: {f.forecast}\n\nAt full size:\n\n{c.forecast}\n"
        )
    return "\n".join(parts)


def pick(run: RunDir, proposed: Proposed, n: int, by: str, out_dir: Path) -> Path | None:
    """Record the choice (0: none) in the run's LOG and its programme's, where the follow-ups
    not picked become open questions; write the picked protocol as `out_dir/<id>.yaml`, never
    over an existing file."""
    if not 0 <= n <= len(proposed.followups):
        raise UserError(f"pick 1 to {len(proposed.followups)}, or 0 for none (got {n})")
    if n == 0:
        text = f"None of the {len(proposed.followups)} follow-ups to {run.id} was picked."
        _log(run, by, "none", text)
        _leave_open(run, proposed, None)
        return None
    c = proposed.followups[n - 1]
    target = out_dir / f"{c.followup.id}.yaml"
    if target.exists():
        raise UserError(f"{target} exists already: nothing was written (it is never replaced)")
    data = _data_files(run, c, out_dir)
    head = f"# Follow-up to run {run.id}: {c.followup.title}\n# Why: {c.followup.reason}\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    for rel in data:  # the run's frozen copies, where the new protocol looks for them
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run.path(rel), out_dir / rel)
    write_atomic(target, head + c.text)
    text = f"Picked follow-up {n} of {len(proposed.followups)}: {c.followup.title}, written to "
    _log(run, by, "picked", f"{text}{target}.\nWhy: {c.followup.reason}")
    _leave_open(run, proposed, c.followup.id)
    return target


def _data_files(run: RunDir, c: Checked, out_dir: Path) -> list[str]:
    """The data files the picked protocol needs that `out_dir` lacks; refused when one there
    differs from the run's copy (the follow-up would silently read other data)."""
    loaded = load_protocol_text(c.text, run.path(f"{c.followup.id}.yaml"))
    missing = []
    for rel in loaded.data_files():
        there = out_dir / rel
        if not there.exists():
            missing.append(rel)
        elif there.read_bytes() != run.path(rel).read_bytes():
            raise UserError(
                f"{there} differs from the copy run {run.id} used: write the follow-up "
                "elsewhere with --out, or make them the same"
            )
    return missing


def _leave_open(run: RunDir, proposed: Proposed, picked: str | None) -> None:
    """The follow-ups not picked, as open questions of the run's programme (if it joined one):
    each with its one-line reason and the run it came from; the picked one is not open."""
    joined = program.of_run(run)
    if joined is None:
        return
    left = "none picked" if picked is None else f"`{picked}` picked instead"
    questions = [
        OpenQuestion(
            title=c.followup.title,
            reason=" ".join(c.followup.reason.split()),
            run_id=run.id,
            followup_id=c.followup.id,
            left=left,
        )
        for c in proposed.followups
    ]
    joined.note_questions(questions, picked=picked)


def _log(run: RunDir, by: str, kind: str, text: str) -> None:
    run.log.append("next", by, kind, text)
    joined = program.of_run(run)
    if joined is not None:
        joined.append("next", by, kind, text)
