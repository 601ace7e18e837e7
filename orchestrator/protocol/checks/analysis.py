"""The analysis section's references: contrasts, regression models and assumed rates name
factors, levels, outcomes and subjects that exist."""

from __future__ import annotations

from pathlib import Path

from orchestrator.protocol.checks.base import Checker
from orchestrator.protocol.schema import Protocol, RegressionModel
from orchestrator.protocol.yamlmap import Path_


def check_analysis(protocol: Protocol, path: Path, lines: dict[Path_, int]) -> None:
    """Each rule in turn; the first broken one raises."""
    _Analysis(protocol, path, lines).run()


class _Analysis(Checker):
    def run(self) -> None:
        self.contrast_levels()
        for i, model in enumerate(self.p.analysis.models):
            self.model_spec(("analysis", "models", i), model)
        self.assumed_rate_conditions()

    def contrast_levels(self) -> None:
        """A contrast compares two levels of one factor, within levels of others."""
        for i, c in enumerate(self.p.analysis.contrasts):
            where = ("analysis", "contrasts", i)
            factors = ", ".join(self.levels)
            if c.factor == "subject":
                raise self.fail(
                    where + ("factor",),
                    "contrasts compare levels of a design factor and are computed for each "
                    f"subject (factors: {factors}); to compare subjects, add an analysis model "
                    "with terms [<factor>, subject]",
                )
            if c.factor not in self.levels:
                raise self.fail(
                    where + ("factor",), f"unknown factor {c.factor!r} (factors: {factors})"
                )
            self.level(where + ("treatment",), c.factor, c.treatment)
            self.level(where + ("control",), c.factor, c.control)
            if c.treatment == c.control:
                others = [lv for lv in self.levels[c.factor] if lv != c.treatment]
                raise self.fail(
                    where + ("control",),
                    f"treatment and control are both {c.control!r}, so the contrast is always "
                    f"zero; compare two different levels of {c.factor}, e.g. control: {others[0]}",
                )
            for factor, level in c.within.items():
                if factor == c.factor:
                    raise self.fail(
                        where + ("within", factor),
                        f"within holds {factor}, the factor the contrast compares, so one arm "
                        f"is always empty; hold only other factors in within, or remove {factor} "
                        "from it",
                    )
                self.level(where + ("within", factor), factor, level)

    def model_spec(self, where: Path_, m: RegressionModel) -> None:
        """A model's outcome is an analysis outcome; its terms are distinct factors (or
        `subject`, given two subjects), none also held fixed in `within`."""
        outcomes = self.p.outcomes
        if m.outcome is not None and m.outcome not in outcomes:
            raise self.fail(
                where + ("outcome",),
                f"{m.outcome!r} is not one of the analysis outcomes ({', '.join(outcomes)})",
            )
        for j, term in enumerate(m.terms):
            if term != "subject" and term not in self.levels:
                factors = ", ".join(self.levels)
                raise self.fail(
                    where + ("terms", j),
                    f"unknown term {term!r} (factors: {factors}, or subject)",
                )
            if term in m.within:
                raise self.fail(where + ("terms", j), f"{term!r} is also held fixed in within")
        if len(set(m.terms)) != len(m.terms):
            raise self.fail(where + ("terms",), "terms must be distinct")
        if "subject" in m.terms and len(self.p.subjects) < 2:
            raise self.fail(where + ("terms",), "`subject` needs at least two subjects")
        for factor, level in m.within.items():
            self.level(where + ("within", factor), factor, level)

    def assumed_rate_conditions(self) -> None:
        """An assumed rate's `when` names subjects and levels that exist."""
        subjects = [s.id for s in self.p.subjects]
        for i, a in enumerate(self.p.analysis.assumed_rates):
            for factor, level in a.when.items():
                where = ("analysis", "assumed_rates", i, "when", factor)
                if factor != "subject":
                    self.level(where, factor, level)
                elif level not in subjects:
                    known = ", ".join(subjects)
                    raise self.fail(where, f"unknown subject {level!r} (subjects: {known})")
