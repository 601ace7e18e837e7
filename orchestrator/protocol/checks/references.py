"""Cross-references within the design, the materials and the evaluation: sizes, ids, factor and
level names, plants, level texts, comprehension answers, and the outcomes the analysis reads."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.protocol.checks.base import Checker
from orchestrator.protocol.schema import KEY, Protocol
from orchestrator.protocol.validation import name_problem
from orchestrator.protocol.yamlmap import Path_

RESERVED = {"subject", "factors", "text", "task", "plant", "document", "replicate", "fields"}
KEY_NAME = re.compile(KEY)


def check_references(protocol: Protocol, path: Path, lines: dict[Path_, int]) -> None:
    """Each rule in turn; the first broken one raises."""
    _References(protocol, path, lines).run()


class _References(Checker):
    def run(self) -> None:
        self.sizes()
        self.unique_ids()
        self.factor_names()
        self.plant_when()
        self.level_texts()
        self.comprehension_answers()
        self.outcomes_are_bool()

    def sizes(self) -> None:
        """A pilot is a smaller run: no more stimuli per cell than the full size."""
        d = self.p.design
        if d.pilot_n_per_cell > d.n_per_cell:
            raise self.fail(
                ("design", "pilot_n_per_cell"),
                f"pilot_n_per_cell ({d.pilot_n_per_cell}) is larger than n_per_cell "
                f"({d.n_per_cell}); a pilot runs a few stimuli per cell, so write at most "
                f"{d.n_per_cell}",
            )

    def unique_ids(self) -> None:
        """Tasks, plants, subjects, hypotheses, comprehension questions and models: no two alike."""
        p = self.p
        listed = [
            (("materials", "tasks"), "id", [t.id for t in p.materials.tasks]),
            (("materials", "plants"), "id", [t.id for t in p.materials.plants]),
            (("subjects",), "id", [s.id for s in p.subjects]),
            (("hypotheses",), "id", [h.id for h in p.hypotheses]),
            (("evaluation", "comprehension"), "id", [q.id for q in p.evaluation.comprehension]),
            (("analysis", "models"), "name", [m.name for m in p.analysis.models]),
            (("analysis", "contrasts"), "name", [c.name for c in p.analysis.contrasts]),
        ]
        for where, key, ids in listed:
            seen: set[str] = set()
            for i, id_ in enumerate(ids):
                if id_ in seen:
                    raise self.fail(
                        where + (i, key),
                        f"duplicate {key} {id_!r}; give each a {key} of its own (results, "
                        "the report and `research compare` find them by it)",
                    )
                seen.add(id_)

    def factor_names(self) -> None:
        """A factor's name is not one the templates already use, and its levels are distinct."""
        for name, factor in self.p.design.factors.items():
            where = ("design", "factors", name)
            if name in RESERVED:
                raise self.fail(where, f"{name!r} is a reserved name; call the factor otherwise")
            if not KEY_NAME.match(name):
                raise self.fail(where, f"factor name: {name_problem(name)}")
            for i, level in enumerate(factor.levels):
                if not KEY_NAME.match(level):
                    raise self.fail(where + ("levels", i), f"level: {name_problem(level)}")
            if len(set(factor.levels)) != len(factor.levels):
                raise self.fail(where + ("levels",), "levels must be distinct")

    def plant_when(self) -> None:
        """`plant_when` names a level of a factor, and there are plants to plant."""
        materials = self.p.materials
        if (w := materials.plant_when) is not None:
            self.level(("materials", "plant_when"), w.factor, w.level)
            if not materials.plants:
                raise self.fail(("materials", "plant_when"), "plant_when is set but no plants")

    def level_texts(self) -> None:
        """Every `level_text` entry is keyed by a factor and one of its levels."""
        for factor, texts in self.p.materials.level_text.items():
            for level in texts:
                self.level(("materials", "level_text", factor, level), factor, level)

    def comprehension_answers(self) -> None:
        """Each comprehension question's answer is one of its choices."""
        for i, q in enumerate(self.p.evaluation.comprehension):
            if q.answer not in q.choices:
                choices = ", ".join(q.choices)
                raise self.fail(
                    ("evaluation", "comprehension", i, "answer"),
                    f"answer {q.answer!r} is not one of the choices ({choices})",
                )

    def outcomes_are_bool(self) -> None:
        """The primary outcome and the other outcomes are bool fields of the verdict."""
        for i, outcome in enumerate(self.p.outcomes):
            where = ("analysis", "primary") if i == 0 else ("analysis", "outcomes")
            spec = self.p.evaluation.verdict.get(outcome)
            if spec is None or spec.type != "bool":
                raise self.fail(where, f"{outcome!r} is not a bool field of evaluation.verdict")
