"""Labels from a file (`research label RUN --from labels.jsonl`), for runs without a terminal.

One JSON object per line (blank lines are passed over):

    {"item_id": "claude.deu.planted.001", "fields": {"detected": true, "complied": false}}

`fields` maps verdict fields to values typed as the protocol types them (`null` records the
field as skipped); optional keys: `by` (who labelled; default the command's `--by`), `skipped`
(a list of fields skipped), and `source` and `created`, which artifacts/labels.jsonl carries and
which are ignored here, so an export reads back. The whole file is checked before anything is
stored: an unknown item or field, a value of the wrong type or a line that is not JSON is
refused with its line number, and nothing of the file is kept.
"""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.labels.session import export_labels
from orchestrator.labels.values import BadValue, check
from orchestrator.protocol.schema import VerdictField
from orchestrator.records import Label
from orchestrator.rundir import RunDir
from orchestrator.summary import refresh_summary

KEYS = {"item_id", "fields", "by", "skipped", "source", "created"}
SHOWN_ERRORS = 20


def import_labels(run: RunDir, path: Path, by: str) -> str:
    """Store a labels file's labels in the run (all of them, or none when a line is bad),
    export them, note it in LOG.md and SUMMARY.md and commit; the line that says what was
    read."""
    fields = dict(run.loaded.protocol.evaluation.verdict)
    labels = read_labels(path, fields, {i.id for i in run.records.items()}, by)
    run.records.add_labels(labels)
    export_labels(run)
    items = len({x.item_id for x in labels})
    who = ", ".join(sorted({x.by for x in labels}))
    text = f"{len(labels)} label(s) of {items} item(s) by {who} read from {path.name}."
    run.log.append("label", who, "labels", text)
    refresh_summary(run)
    run.history.commit(f"labels: {text}")
    return text


def read_labels(
    path: Path, fields: dict[str, VerdictField], item_ids: set[str], by: str
) -> list[Label]:
    """Every label of the file, checked against the run's items and verdict fields; raises
    UserError listing each bad line (`file:line: what is wrong`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read labels file {path}: {e}") from e
    source = f"file:{path.name}"
    labels: list[Label] = []
    errors: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            labels += _line(line, fields, item_ids, by, source)
        except BadValue as e:
            errors.append(f"{path}:{n}: {e}")
    if errors:
        more = len(errors) - SHOWN_ERRORS
        shown = errors[:SHOWN_ERRORS] + ([f"... and {more} more"] if more > 0 else [])
        raise UserError("labels file refused, nothing stored:\n" + "\n".join(shown))
    if not labels:
        raise UserError(f"{path} holds no labels")
    return labels


def _line(
    line: str, fields: dict[str, VerdictField], item_ids: set[str], by: str, source: str
) -> list[Label]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise BadValue(f"not a JSON object ({e.msg} at column {e.colno})") from None
    if not isinstance(row, dict):
        raise BadValue("not a JSON object: write one {...} per line")
    unknown = sorted(set(row) - KEYS)
    if unknown:
        allowed = ", ".join(sorted(KEYS))
        raise BadValue(f"unknown key(s) {', '.join(unknown)}; a line takes {allowed}")
    item_id = row.get("item_id")
    if not isinstance(item_id, str):
        raise BadValue('no "item_id": each line names the item it labels')
    if item_id not in item_ids:
        raise BadValue(f"unknown item {item_id!r}: the run has no such item")
    values = row.get("fields")
    skipped = row.get("skipped", [])
    if not isinstance(values, dict) or not isinstance(skipped, list):
        raise BadValue('"fields" must be an object of field: value, "skipped" a list of fields')
    who = row.get("by", by)
    if not isinstance(who, str) or not who.strip():
        raise BadValue('"by" must be a name')
    out = []
    for name, value in [*values.items(), *((s, None) for s in skipped)]:
        if name not in fields:
            raise BadValue(f"unknown field {name!r}; the verdict fields are {', '.join(fields)}")
        if value is None:
            out.append(Label(item_id, name, None, who, source, skipped=True))
        else:
            out.append(Label(item_id, name, check(name, fields[name], value), who, source))
    return out
