"""The rule for which flags block `--yes`, and open flags grouped as the human sees them."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.measured import CONSTRAINT, TOO_MANY_UNSCORED
from orchestrator.records import FlagRow
from orchestrator.rundir import RunDir

BLOCKING = ("data_quality", TOO_MANY_UNSCORED, CONSTRAINT)
"""Kinds of evaluate-stage flags that --yes alone does not approve past: an evaluator's
data_quality flag, more items unscored than the protocol allows, verdicts that break a
constraint. (The screen stage's own heuristic flags are shown, but do not block.)"""


def is_blocking(flag: FlagRow) -> bool:
    return flag.resolution is None and flag.stage == "evaluate" and flag.kind in BLOCKING


def blocking_flags(run: RunDir) -> list[str]:
    """The open flags that --yes alone does not approve past, one line each."""
    return [f"{f.kind} from {f.raised_by}: {f.text}" for f in run.records.flags() if is_blocking(f)]


def blocking_kinds(run: RunDir) -> list[str]:
    """The kinds of the open blocking flags, each once."""
    return list(dict.fromkeys(f.kind for f in run.records.flags() if is_blocking(f)))


@dataclass(frozen=True)
class FlagGroup:
    """Open flags of one kind, as the human sees them at a checkpoint."""

    stage: str
    kind: str
    raised_by: list[str]
    texts: list[str]
    examples: list[tuple[str, str]]
    """(item id, the start of its response)."""
    blocking: bool


def flag_groups(run: RunDir) -> list[FlagGroup]:
    """Open flags grouped by kind: who raised them, what they said, example items."""
    responses = run.records.responses()
    groups: dict[tuple[str, str], list[FlagRow]] = {}
    for f in run.records.flags():
        if f.resolution is None:
            groups.setdefault((f.stage, f.kind), []).append(f)

    def blocking_first(group: tuple[tuple[str, str], list[FlagRow]]) -> tuple:
        (stage, kind), flags = group
        return (not any(is_blocking(f) for f in flags), (stage, kind))

    out = []
    for (stage, kind), flags in sorted(groups.items(), key=blocking_first):
        items = list(dict.fromkeys(i for f in flags for i in f.items))[:3]
        examples = [(i, _opening(responses[i].text) if i in responses else "") for i in items]
        out.append(
            FlagGroup(
                stage=stage,
                kind=kind,
                raised_by=sorted({f.raised_by for f in flags}),
                texts=list(dict.fromkeys(f.text for f in flags)),
                examples=examples,
                blocking=any(is_blocking(f) for f in flags),
            )
        )
    return out


def _opening(text: str) -> str:
    return " ".join(text.split())[:100]
