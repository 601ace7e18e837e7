"""A design session's directory: the ledger of the designer's calls, LOG.md, and each approved
stage on disk, so a design killed at any point and started again with the same question and
example resumes: approved stages are not asked again and no call is paid twice.

    <runs>/.designs/<slug>-<stamp>/
      session.json        question, example, model, form, created, status (drafting | written)
      records.sqlite      the call ledger (orchestrator/records)
      LOG.md              drafts, errors sent back, decisions with their notes
      stages/<stage>.yaml the approved sections of each stage, with who approved them
      stages/<stage>.rejected.yaml  the notes a stage was rejected with, and the drafts rejected
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from memory import utc_stamp
from memory.files import write_atomic
from memory.log import RunLog
from orchestrator.design.draft import Draft
from orchestrator.design.stages import STAGES, DesignStage
from orchestrator.design.targets import MaterialsPlan, plan_of
from orchestrator.records.store import Records

DESIGNS = ".designs"


def slug(question: str, n: int = 40) -> str:
    words = re.findall(r"[a-z0-9]+", question.casefold())
    return "-".join(words)[:n].strip("-") or "design"


@dataclass(frozen=True)
class Rejection:
    note: str
    draft: str
    """The rejected draft, as YAML."""
    by: str


@dataclass(frozen=True)
class Approval:
    sections: Draft
    by: str
    note: str


class DesignSession:
    def __init__(self, path: Path):
        self.path = path
        meta = json.loads((path / "session.json").read_text())
        self.question: str = meta["question"]
        self.example: str = meta["example"]
        self.example_name: str = meta["example_name"]
        self.model: str = meta["model"]
        self.form: str = meta.get("form", "full")
        self.created: str = meta["created"]
        self.records = Records(path / "records.sqlite")
        self.log = RunLog(path / "LOG.md")

    @property
    def sha(self) -> str:
        """The ledger's protocol hash: the question, the example, the model and the form make a
        design's identity (a compact draft replayed into the full form's checks would fail)."""
        form = [] if self.form == "full" else [self.form]
        text = json.dumps([self.question, self.example, self.model, *form])
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def open(
        cls,
        root: Path,
        question: str,
        example: str,
        example_name: str,
        model: str,
        form: str = "full",
    ) -> DesignSession:
        """The unfinished session for this question, example, model and form, or a new one."""
        wanted = (question, example, model, form)
        for path in sorted((root / DESIGNS).glob("*/session.json"), reverse=True):
            meta = json.loads(path.read_text())
            same = (meta["question"], meta["example"], meta["model"], meta.get("form", "full"))
            if same == wanted and meta["status"] == "drafting":
                return cls(path.parent)
        stamp = utc_stamp().replace(":", "").replace("-", "")
        path = root / DESIGNS / f"{slug(question)}-{stamp}"
        for k in range(2, 1000):  # another design of this question began this second
            try:
                (path / "stages").mkdir(parents=True)
                break
            except FileExistsError:
                path = root / DESIGNS / f"{slug(question)}-{stamp}-{k}"
        meta = {
            "question": question,
            "example": example,
            "example_name": example_name,
            "model": model,
            "form": form,
            "created": utc_stamp(),
            "status": "drafting",
        }
        write_atomic(path / "session.json", json.dumps(meta, indent=2) + "\n")
        session = cls(path)
        session.log.append("design", "human", "start", f"question: {question}")
        return session

    def close(self) -> None:
        self.records.close()

    def approved(self, stage: DesignStage) -> Approval | None:
        path = self.path / "stages" / f"{stage.name}.yaml"
        if not path.exists():
            return None
        data: dict[str, Any] = yaml.safe_load(path.read_text())
        return Approval(data["sections"], data["by"], data["note"])

    def approve(self, stage: DesignStage, approval: Approval) -> None:
        data = {"by": approval.by, "note": approval.note, "sections": approval.sections}
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        write_atomic(self.path / "stages" / f"{stage.name}.yaml", text)
        note = f": {approval.note}" if approval.note else ""
        self.log.append(stage.name, approval.by, "approve", f"approved{note}")

    def materials_plan(self) -> MaterialsPlan | None:
        """The approved plan's materials plan (None before the plan is approved, or for a plan
        approved before plans declared one)."""
        approval = self.approved(STAGES[0])
        return plan_of(approval.sections if approval else None)

    def rejections(self, stage: DesignStage) -> list[Rejection]:
        path = self.path / "stages" / f"{stage.name}.rejected.yaml"
        if not path.exists():
            return []
        return [Rejection(**r) for r in yaml.safe_load(path.read_text())]

    def reject(self, stage: DesignStage, rejection: Rejection) -> None:
        """Kept before the revision is asked for: a design stopped now resumes at it."""
        rows = [r.__dict__ for r in [*self.rejections(stage), rejection]]
        text = yaml.safe_dump(rows, sort_keys=False, allow_unicode=True)
        write_atomic(self.path / "stages" / f"{stage.name}.rejected.yaml", text)
        self.log.append(stage.name, rejection.by, "reject", rejection.note)

    def spent(self) -> tuple[int, float]:
        """Calls recorded in the ledger and their cost in dollars."""
        usage = self.records.usage().values()
        return int(sum(u["calls"] for u in usage)), sum(u["cost_usd"] for u in usage)

    def written(self, out: Path) -> None:
        meta = json.loads((self.path / "session.json").read_text())
        meta.update(status="written", out=str(out))
        write_atomic(self.path / "session.json", json.dumps(meta, indent=2) + "\n")
        self.log.append("design", "designer", "written", f"protocol written to {out}")
