"""`evaluation.show_task_fields`: task fields judges see beside each item (an expected answer),
refused when no task has them, named in the report and previewed by `validate --show`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from orchestrator import runner
from orchestrator.errors import ProtocolError
from orchestrator.protocol import load_protocol
from orchestrator.records import Records
from tests.conftest import DEU, research, without_probes
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.world import is_analyst

SHOWN = "evaluation:\n  show_task_fields: [answer]\n"
ABSENT = "absent: this item's task has no such field"


def answered_deu(tmp_path: Path, *, show: str | None = SHOWN) -> Path:
    """DEU whose tasks, all but the summaries, carry `fields: {answer: ANSWER-<id>}`."""
    text = re.sub(
        r"\n    - id: ((?:ans|rep|rev|adv)-[a-z-]+)\n",
        r'\n    - id: \1\n      fields: {answer: "ANSWER-\1"}\n',
        without_probes(DEU.read_text()),
    )
    if show is not None:
        text = text.replace("evaluation:\n", show, 1)
    path = tmp_path / "deu.yaml"
    path.write_text(text)
    return path


def served_items(world: FakeAnthropic) -> list[dict[str, Any]]:
    """Every item get_batch handed an evaluator, as the judge read it."""
    out = []
    for r in world.requests:
        if not r.body.get("tools") or is_analyst(r.body):
            continue
        for m in r.body["messages"]:
            if m["role"] != "user" or not isinstance(m["content"], list):
                continue
            for b in m["content"]:
                content = b.get("content")
                if b.get("type") == "tool_result" and str(content).startswith('{"items"'):
                    out += json.loads(content)["items"]
    return out


def test_judges_see_the_shown_task_fields_with_each_item(
    env: dict, runs: Path, world: FakeAnthropic, tmp_path: Path
) -> None:
    path = answered_deu(tmp_path)
    assert runner.start(path, pilot=True, yes=True, run_id="answers").status == "complete"
    tasks = {i.task_id for i in Records(runs / "answers" / "records.sqlite").items()}
    items = served_items(world)
    assert items, "no get_batch result reached a judge"
    # every item carries the field, labelled, apart from the input ...
    shown = {i["task_fields"]["answer"] for i in items}
    assert all(set(i["task_fields"]) == {"answer"} for i in items)
    assert all("ANSWER-" not in i["input"] for i in items)
    # ... with its task's answer, or said to be absent for the tasks without one
    expected = {f"ANSWER-{t}" for t in tasks if not t.startswith("sum-")}
    if any(t.startswith("sum-") for t in tasks):
        expected.add(f"({ABSENT})")
    assert shown == expected
    # the judge was told the field exists
    judges = [r.body for r in world.requests if r.body.get("tools") and not is_analyst(r.body)]
    told = "get_batch` also gives `task_fields`: `answer`"
    assert all(told in json.dumps(b["system"]) for b in judges)
    report = (runs / "answers" / "report.md").read_text()
    assert "shown the task fields answer with each item" in report


def test_without_show_task_fields_judges_see_no_task_field(
    env: dict, runs: Path, world: FakeAnthropic, tmp_path: Path
) -> None:
    path = answered_deu(tmp_path, show=None)
    assert runner.start(path, pilot=True, yes=True, run_id="hidden").status == "complete"
    items = served_items(world)
    assert items and all("task_fields" not in i for i in items)
    judged = [r for r in world.requests if r.body.get("tools") and not is_analyst(r.body)]
    assert not any("ANSWER-" in json.dumps(r.body) for r in judged)
    assert "task fields" not in (runs / "hidden" / "report.md").read_text()


def test_a_shown_field_no_task_has_is_refused(tmp_path: Path) -> None:
    path = answered_deu(tmp_path, show="evaluation:\n  show_task_fields: [answer, anwser]\n")
    with pytest.raises(ProtocolError) as e:
        load_protocol(path)
    err = e.value
    line = path.read_text().splitlines().index("  show_task_fields: [answer, anwser]") + 1
    assert (err.field, err.line) == ("evaluation.show_task_fields[1]", line)
    assert "no task has a field 'anwser' (the tasks' fields are answer)" in err.message
    assert "fields: {anwser: ...}" in err.message and "or remove 'anwser'" in err.message


def test_validate_show_prints_what_judges_will_see(tmp_path: Path) -> None:
    path = answered_deu(tmp_path)
    # --show takes stimuli round-robin over the 8 cells: 8 × 30 reaches every task in each
    result = research("validate", str(path), "--show", "240")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("evaluators see: user message (blinded)") == 240
    assert out.count("evaluators see: task fields (evaluation.show_task_fields)") == 240
    assert "answer: ANSWER-ans-" in out and "answer: (absent: this task has no such field)" in out
    # without the key, the judges' view is the blinded user message alone
    plain = research("validate", str(answered_deu(tmp_path, show=None)), "--show", "1").stdout
    assert "evaluators see: user message (blinded)" in plain
    assert "evaluators see: task fields" not in plain and "ANSWER-" not in plain
