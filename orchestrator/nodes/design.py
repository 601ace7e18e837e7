"""design: render every stimulus deterministically from the protocol's seed into records."""

from __future__ import annotations

import json
from collections import Counter

from langgraph.runtime import Runtime

from memory import write_atomic
from orchestrator.context import RunContext
from orchestrator.forecast import design_forecast, design_text
from orchestrator.progress import finish_stage
from orchestrator.protocol.stimuli import Stimulus, build_stimuli
from orchestrator.records import Item, Turn
from orchestrator.state import RunState


def design(state: RunState, runtime: Runtime[RunContext]) -> RunState:
    ctx = runtime.context
    stimuli = build_stimuli(ctx.protocol, pilot=ctx.run.pilot)
    items = [item_of(s) for s in stimuli]
    ctx.run.records.add_items(items)
    per_cell = Counter(s.cell.key for s in stimuli)
    tasks = len({s.task_id for s in stimuli})
    text = (
        f"Rendered {len(stimuli)} stimuli in {len(per_cell)} cells "
        f"({min(per_cell.values())}–{max(per_cell.values())} per cell) from {tasks} tasks, "
        f"seed {ctx.protocol.design.seed}."
    )
    # the forecast is made once, before anything is spent, and kept for the report to compare
    path = ctx.run.path("artifacts", "forecast.json")
    if not path.exists():
        f = design_forecast(ctx.protocol, ctx.run.records.items())
        write_atomic(path, json.dumps(f, indent=2) + "\n")
        text += "\nForecast:\n" + design_text(f, ctx.protocol.analysis.primary)
    finish_stage(ctx.run, "design", {"items": len(stimuli), "cells": len(per_cell)}, text)
    return {"items": len(stimuli), "stage": "design"}


def item_of(s: Stimulus) -> Item:
    """A stimulus as the records keep it."""
    return Item(
        id=s.item_id,
        cell=s.cell.key,
        subject=s.cell.subject,
        levels=dict(s.cell.levels),
        replicate=s.replicate,
        task_id=s.task_id,
        plant_id=s.plant_id,
        system=s.system,
        user=s.user,
        blind_user=s.blind_user,
        turns=tuple(Turn(*t) for t in s.turns),
        blind_turns=tuple(Turn(*t) for t in s.blind_turns),
    )
