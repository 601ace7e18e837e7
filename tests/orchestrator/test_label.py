"""`research label` on a finished pilot: in a real terminal (a pty), quit halfway, resumed,
interrupted with Ctrl-C, finished, and folded into the report by `research report`; and the
same labels from a file, with a malformed file refused line by line."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pexpect
import pytest

from orchestrator import runner
from orchestrator.analysis import load_analysis
from orchestrator.rundir import RunDir
from tests.conftest import DEU, ROOT, copy_run, research, without_probes
from tests.limits import HANG_S

PROMPT = r"{field} \(.*?\): "
CELL = re.compile(r"\b\w[\w-]*\.(control|deu)\.(none|planted)\b")
"""A cell key or an item id (`<subject>.<framing>.<planted>[.<n>]`): never shown."""


def spawn_label(run_id: str, env: dict, log: io.StringIO, *args: str) -> pexpect.spawn:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "orchestrator.cli.app", "label", run_id, "--n", "3", "--by", "tester", *args],
        cwd=str(ROOT),
        # a dumb terminal: rich writes the same text without styles, which would split the
        # words a test waits for with escape codes
        env={**env, "COLUMNS": "120", "TERM": "dumb"},
        encoding="utf-8",
        timeout=HANG_S,  # per expect: a guard against a hang, not a speed
        dimensions=(50, 120),
    )
    child.logfile_read = log
    return child


def answer(child: pexpect.spawn, field: str, text: str) -> None:
    child.expect(PROMPT.format(field=field))
    child.sendline(text)


def labels(run_dir: Path) -> dict[str, dict[str, object]]:
    """Labels stored so far: item id → field → value (skips as "skipped")."""
    with RunDir(run_dir) as run:
        rows = run.records.labels()
    out: dict[str, dict[str, object]] = {}
    for x in rows:
        out.setdefault(x.item_id, {})[x.field] = "skipped" if x.skipped else x.value
    return out


def test_label_in_a_terminal_quit_resume_interrupt_finish(
    completed_pilot: Path, runs: Path, env: dict
) -> None:
    run_dir = copy_run(completed_pilot, runs, "label-tty")
    log = io.StringIO()
    child = spawn_label("label-tty", env, log)
    child.expect(r"Labelling label-tty as tester: 3 items sampled, 0 labelled already")
    child.expect("rubric")
    child.expect(r"item 1 of 3")
    child.expect("Response")
    answer(child, "detected", "maybe")  # refused: not y or n
    child.expect("type y or n")
    child.sendline("y")
    answer(child, "complied", "n")
    answer(child, "questioned_legitimacy", "s")  # skipped
    answer(child, "reasoning_style", "7")  # refused: there are three
    child.expect("takes one of checklist, experiential, none")
    child.sendline("2")
    answer(child, "evidence", "I noticed an instruction")
    child.expect(r"item 2 of 3")
    answer(child, "detected", "n")
    answer(child, "complied", "q")  # quit halfway through the item
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    first = labels(run_dir)
    assert len(first) == 2
    done = next(v for v in first.values() if len(v) == 5)
    assert done == {
        "detected": True,
        "complied": False,
        "questioned_legitimacy": "skipped",
        "reasoning_style": "experiential",
        "evidence": "I noticed an instruction",
    }
    assert {"detected": False} in first.values()
    assert "continue with: research label label-tty" in log.getvalue()

    # a new session resumes at the field it stopped at, and Ctrl-C keeps what was given
    child = spawn_label("label-tty", env, log)
    child.expect("3 items sampled, 1 labelled already")
    child.expect(r"item 2 of 3")
    answer(child, "complied", "n")
    child.expect(PROMPT.format(field="questioned_legitimacy"))
    child.sendintr()
    child.expect("interrupted")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    second = labels(run_dir)
    assert {"detected": False, "complied": False} in second.values()

    # the third session finishes the sample
    child = spawn_label("label-tty", env, log)
    child.expect(r"item 2 of 3")
    for field, text in [("questioned_legitimacy", "n"), ("reasoning_style", "3")]:
        answer(child, field, text)
    answer(child, "evidence", "s")
    child.expect(r"item 3 of 3")
    for field, text in [
        ("detected", "n"),
        ("complied", "n"),
        ("questioned_legitimacy", "n"),
        ("reasoning_style", "none"),
        ("evidence", "s"),
    ]:
        answer(child, field, text)
    child.expect("next: research report label-tty")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert len(labels(run_dir)) == 3

    # blind: no item id or cell key, no judges' verdict, in anything the labeller saw
    seen = log.getvalue()
    assert not CELL.search(seen), CELL.search(seen)
    assert "evaluator-" not in seen and "judged true" not in seen
    exported = (run_dir / "artifacts" / "labels.jsonl").read_text().splitlines()
    assert len(exported) == 3 and all(json.loads(x)["by"] == "tester" for x in exported)
    assert "labels" in (run_dir / "LOG.md").read_text()

    # `research report` folds them in
    done = research("report", "label-tty", env=env)
    assert done.returncode == 0, done.stderr
    result = load_analysis(run_dir / "artifacts" / "analysis.json")
    assert result.calibration is not None and result.calibration.items == 3
    assert result.calibration.fields["detected"].n == 3
    md = (run_dir / "report.md").read_text()
    assert "### Judges against a human" in md and "3 item(s) labelled by tester" in md
    assert "Against 3 human label(s) of `detected`" in md


def test_label_reads_a_file_and_refuses_a_malformed_one(
    completed_pilot: Path, runs: Path, env: dict, tmp_path: Path
) -> None:
    run_dir = copy_run(completed_pilot, runs, "label-file")
    items = [
        json.loads(x) for x in (run_dir / "artifacts" / "items.jsonl").read_text().splitlines()
    ]
    ids = [i["id"] for i in items]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "\n".join(
            [
                json.dumps({"item_id": ids[0], "fields": {"detected": True}}),
                json.dumps({"item_id": "nobody.control.none.099", "fields": {"detected": True}}),
                json.dumps({"item_id": ids[1], "fields": {"detectd": True}}),
                json.dumps({"item_id": ids[2], "fields": {"detected": "yes"}}),
                "{not json",
                json.dumps({"item_id": ids[3], "fields": {"reasoning_style": "vibes"}}),
            ]
        )
        + "\n"
    )
    refused = research("label", "label-file", "--from", str(bad), env=env)
    assert refused.returncode == 2
    err = " ".join(refused.stderr.split())
    assert f"{bad}:2: unknown item 'nobody.control.none.099'" in err
    assert f"{bad}:3: unknown field 'detectd'" in err
    assert f"{bad}:4: `detected` takes true or false, not 'yes'" in err
    assert f"{bad}:5: not a JSON object" in err
    assert f"{bad}:6: `reasoning_style` takes one of checklist, experiential, none" in err
    assert "Traceback" not in refused.stderr
    assert labels(run_dir) == {}  # nothing of a refused file is kept

    good = tmp_path / "labels.jsonl"
    rows = [
        {"item_id": i["id"], "fields": {"detected": "planted" in i["cell"] and k % 2 == 0}}
        for k, i in enumerate(items)
    ]
    rows[0]["fields"]["evidence"] = None  # a skip
    good.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = research("label", "label-file", "--from", str(good), "--by", "pipeline", env=env)
    assert done.returncode == 0, done.stderr
    assert f"{len(rows) + 1} label(s) of {len(rows)} item(s) by pipeline" in done.stdout
    assert labels(run_dir)[ids[0]]["evidence"] == "skipped"
    # the export reads back in (a copy: the import rewrites the export)
    exported = tmp_path / "exported.jsonl"
    exported.write_text((run_dir / "artifacts" / "labels.jsonl").read_text())
    again = research("label", "label-file", "--from", str(exported), env=env)
    assert again.returncode == 0, again.stderr
    done = research("report", "label-file", env=env)
    assert done.returncode == 0, done.stderr
    cal = load_analysis(run_dir / "artifacts" / "analysis.json").calibration
    assert cal is not None and cal.fields["detected"].n == len(rows)
    assert cal.corrected and {c.outcome for c in cal.corrected} == {"detected"}


def test_label_without_a_terminal_asks_for_a_file(
    completed_pilot: Path, runs: Path, env: dict
) -> None:
    copy_run(completed_pilot, runs, "label-pipe")
    done = research("label", "label-pipe", env=env)
    assert done.returncode == 2 and "--from labels.jsonl" in done.stderr


@pytest.mark.parametrize("flag", ["--help"])
def test_label_help_explains_the_keys_and_the_file(flag: str) -> None:
    done = research("label", flag)
    text = " ".join(done.stdout.split())
    assert "s skips a field, q quits" in text and '"item_id"' in text


def test_labels_at_the_evaluate_checkpoint_leave_the_run_waiting_there(
    env: dict, runs: Path, tmp_path: Path
) -> None:
    """Labelling before approving the judges' work is the natural order: SUMMARY.md then names
    the labels and still says where the run waits."""
    protocol = tmp_path / "deu.yaml"
    protocol.write_text(without_probes(DEU.read_text()))
    assert runner.start(protocol, pilot=True, run_id="early").waiting_at == "design"
    runner.approve("early", by="alice")
    assert runner.resume("early").waiting_at == "evaluate"
    run_dir = runs / "early"
    with RunDir(run_dir) as run:
        item = run.records.items()[0].id
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"item_id": item, "fields": {"detected": False}}) + "\n")
    done = research("label", "early", "--from", str(labels), "--by", "bob", env=env)
    assert done.returncode == 0, done.stderr
    summary = (run_dir / "SUMMARY.md").read_text()
    assert "- Status: **awaiting approval at evaluate**" in summary
    assert (
        "- human labels: 1 item(s) labelled by bob (the analyze stage sets the judges " in summary
    )
    assert "Waiting for approval at the `evaluate` checkpoint" in summary
