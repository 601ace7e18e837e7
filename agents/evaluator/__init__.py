"""Evaluator sub-agents: read the protocol, pass a comprehension check, judge blinded items with
tools, flag what looks wrong, and keep going across context compactions and restarts.

- `brief`: what an evaluator is given (`Brief`, `Question`, `WorkItem`), what it returns
  (`AgentVerdict`), and the `Sink` its decisions go to;
- `schema`: the protocol's verdict fields as a pydantic model and as the submit tool's schema;
- `assignment`: one evaluator's items by ref and what it has done with them;
- `read_protocol`, `comprehension`, `get_batch`, `flag_issue`, `submit_verdicts`, `write_notes`:
  one tool each, its schema and handler;
- `agent`: `EvaluatorAgent`, the free conversation and its compaction, on `agents.loop`;
- `scripted`: the scripted mode (forced calls, for small local judges), on the same loop.
"""

from agents.evaluator.agent import EvaluatorAgent
from agents.evaluator.brief import AgentVerdict, Brief, Question, Replaced, Sink, WorkItem
from agents.evaluator.flag_issue import FLAG_KINDS
from agents.evaluator.schema import (
    SUBMIT_VERDICTS,
    FieldSpec,
    submit_definition,
    verdict_model,
    verdict_schema,
)

__all__ = [
    "FLAG_KINDS",
    "SUBMIT_VERDICTS",
    "AgentVerdict",
    "Brief",
    "EvaluatorAgent",
    "FieldSpec",
    "Question",
    "Replaced",
    "Sink",
    "WorkItem",
    "submit_definition",
    "verdict_model",
    "verdict_schema",
]
