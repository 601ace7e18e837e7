"""A labelling session on a run: the sample, each item as the evaluators saw it, what is labelled
and what is left, and the labels written as they are given.

Every answer is stored the moment it is given (records.sqlite, table `labels`), so a session
that is quit or killed loses nothing, and the next one starts at the first field without a label
of the first item of the sample that has one. `finish` exports all labels to
artifacts/labels.jsonl, notes the session in LOG.md and commits the run's text files.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from agents.prompts import say
from memory import write_atomic
from orchestrator.analysis import primary_verdicts
from orchestrator.errors import UserError
from orchestrator.labels.sample import shown_order, stratified_order
from orchestrator.nodes.conversation import generated_replies
from orchestrator.nodes.evaluate import judged_prompt
from orchestrator.protocol.schema import VerdictField
from orchestrator.protocol.stimuli import shown_task_fields
from orchestrator.records import Label
from orchestrator.rundir import RunDir
from orchestrator.summary import refresh_summary

TERMINAL = "terminal"


@dataclass(frozen=True)
class ItemView:
    """One item as the evaluators saw it: what the subject answered, the task fields the
    protocol shows judges, and the response. Nothing of its cell; its id stays unshown."""

    item_id: str
    input: str
    task_fields: dict[str, str]
    response: str


class LabelSession:
    """The labelling of one run by one researcher (`research label RUN`)."""

    def __init__(self, run: RunDir, n: int, by: str):
        self.run, self.by = run, by
        protocol = run.loaded.protocol
        self.fields: dict[str, VerdictField] = dict(protocol.evaluation.verdict)
        self.rubric = protocol.evaluation.rubric
        rec = run.records
        self._items = {i.id: i for i in rec.items()}
        verdicts = primary_verdicts(rec.verdicts())
        seed, primary = protocol.design.seed, protocol.analysis.primary
        order = stratified_order(list(self._items.values()), verdicts, primary, seed)
        if not order:
            raise UserError(
                f"{run.id} has no judged items to label yet: label it after its evaluate stage"
            )
        self.sample = shown_order(order[:n], seed)
        self._answered = {(x.item_id, x.field) for x in rec.labels()}
        self.recorded = 0
        """Answers given in this session (skips included)."""

    def left(self, item_id: str) -> list[str]:
        """The item's fields without a label or a skip, in the protocol's order."""
        return [f for f in self.fields if (item_id, f) not in self._answered]

    def todo(self) -> list[str]:
        """Items of the sample with a field left, in the order they are shown."""
        return [i for i in self.sample if self.left(i)]

    def position(self, item_id: str) -> int:
        """The item's place in the sample, from 1."""
        return self.sample.index(item_id) + 1

    def view(self, item_id: str) -> ItemView:
        item = self._items[item_id]
        rec = self.run.records
        generated = generated_replies(rec, [item]).get(item_id, [])
        shown = shown_task_fields(self.run.loaded.protocol)[item.task_id]
        absent = say("tools/get_batch.j2", "absent")
        fields = {k: absent if v is None else str(v) for k, v in shown.items()}
        response = rec.responses()[item_id].text
        return ItemView(item_id, judged_prompt(item, generated), fields, response)

    def record(self, item_id: str, field: str, value: Any, skipped: bool = False) -> None:
        """Store one answer now (a skip stores no value, and is not asked again)."""
        label = Label(item_id, field, None if skipped else value, self.by, TERMINAL, skipped)
        self.run.records.add_labels([label])
        self._answered.add((item_id, field))
        self.recorded += 1

    def finish(self) -> str:
        """Export the labels, note the session in LOG.md and SUMMARY.md, commit; the line that
        says so."""
        done = len(self.sample) - len(self.todo())
        text = (
            f"{self.recorded} answer(s) by {self.by} in the terminal; {done} of the "
            f"{len(self.sample)} sampled items fully labelled."
        )
        export_labels(self.run)
        if self.recorded:
            self.run.log.append("label", self.by, "labels", text)
            refresh_summary(self.run)
            self.run.history.commit(f"labels: {text}")
        return text


def export_labels(run: RunDir) -> int:
    """Write every label to artifacts/labels.jsonl, one line per item, labeller and source (the
    format `research label --from` reads); return the number of lines."""
    groups: dict[tuple[str, str, str], list[Label]] = defaultdict(list)
    for x in run.records.labels():
        groups[(x.item_id, x.by, x.source)].append(x)
    lines = []
    for (item_id, by, source), labels in sorted(groups.items()):
        row = {
            "item_id": item_id,
            "fields": {x.field: x.value for x in labels if not x.skipped},
            "skipped": [x.field for x in labels if x.skipped],
            "by": by,
            "source": source,
            "created": max(x.created for x in labels),
        }
        lines.append(json.dumps(row, sort_keys=False) + "\n")
    write_atomic(run.path("artifacts", "labels.jsonl"), "".join(lines))
    return len(lines)
