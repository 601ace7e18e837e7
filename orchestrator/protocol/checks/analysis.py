"""The analysis section's references: contrasts, regression models, constraints and assumed
rates name factors, levels, outcomes and subjects that exist."""

from __future__ import annotations

from pathlib import Path

from orchestrator.protocol.checks.base import Checker
from orchestrator.protocol.schema import Constraint, Protocol, RegressionModel
from orchestrator.protocol.yamlmap import Path_


def check_analysis(protocol: Protocol, path: Path, lines: dict[Path_, int]) -> None:
    """Each rule in turn; the first broken one raises."""
    _Analysis(protocol, path, lines).run()


class _Analysis(Checker):
    def run(self) -> None:
        self.contrast_levels()
        for i, model in enumerate(self.p.analysis.models):
            self.model_spec(("analysis", "models", i), model)
        for i, constraint in enumerate(self.p.analysis.constraints):
            self.constraint(("analysis", "constraints", i), constraint)
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
            self.contrast_outcomes(where, c.outcomes)

    def contrast_outcomes(self, where: Path_, named: list[str]) -> None:
        """A contrast is named for analysis outcomes, each once."""
        outcomes = self.p.outcomes
        for j, outcome in enumerate(named):
            if outcome not in outcomes:
                raise self.fail(
                    where + ("outcomes", j),
                    f"{outcome!r} is not one of the analysis outcomes ({', '.join(outcomes)}); "
                    "name one of them, or add it to analysis.outcomes",
                )
        if len(set(named)) != len(named):
            raise self.fail(where + ("outcomes",), "outcomes must be distinct; name each once")

    def constraint(self, where: Path_, c: Constraint) -> None:
        """A constraint names a bool, enum or ordinal verdict field, one of its values, and
        levels of the design (or subjects) that leave some cells outside it."""
        verdict = self.p.evaluation.verdict
        fit = [n for n, f in verdict.items() if f.type in ("bool", "enum", "ordinal")]
        field = verdict.get(c.outcome)
        if field is None or field.type not in ("bool", "enum", "ordinal"):
            what = "unknown outcome" if field is None else f"{field.type} field"
            raise self.fail(
                where + ("outcome",),
                f"{what} {c.outcome!r}: a constraint names a bool, enum or ordinal verdict "
                f"field; write one of {', '.join(fit) or '(none: add one to evaluation.verdict)'}",
            )
        self.constraint_value(where, c, field.type, field.values or field.levels)
        subjects = [s.id for s in self.p.subjects]
        for factor, levels in c.allowed().items():
            at = where + ("requires", factor)
            known = subjects if factor == "subject" else self.levels.get(factor)
            if known is None:
                factors = ", ".join(self.levels)
                raise self.fail(
                    at,
                    f"unknown factor {factor!r} (factors: {factors}, or subject); name the "
                    "factor whose levels allow the outcome",
                )
            for level in levels:
                if level not in known:
                    raise self.fail(
                        at,
                        f"unknown level {level!r} of {factor} (levels: {', '.join(known)}); "
                        "write one of them",
                    )
        if all(set(levels) >= set(self._known(f)) for f, levels in c.allowed().items()):
            raise self.fail(
                where + ("requires",),
                "requires allows every level, so no item can break the constraint; name only "
                f"the levels where {c.outcome} can occur",
            )

    def _known(self, factor: str) -> list[str]:
        return [s.id for s in self.p.subjects] if factor == "subject" else self.levels[factor]

    def constraint_value(self, where: Path_, c: Constraint, kind: str, values: list[str]) -> None:
        if kind == "bool" and not isinstance(c.value, bool):
            raise self.fail(
                where + ("value",),
                f"{c.outcome} is a bool field: write value: true or value: false (or leave "
                "value out for true)",
            )
        if kind == "bool":
            return
        if isinstance(c.value, bool):
            written = (*where, "value") in self.lines
            hint = " (in quotes: YAML reads yes, no, true and false as a bool)" if written else ""
            raise self.fail(
                where + ("value",),
                f"{c.outcome} is an {kind} field: name the value that is impossible{hint}, "
                f"e.g. value: {values[0]}",
            )
        if c.value not in values:
            raise self.fail(
                where + ("value",),
                f"{c.value!r} is not one of {c.outcome}'s values ({', '.join(values)}); write "
                "one of them",
            )

    def model_spec(self, where: Path_, m: RegressionModel) -> None:
        """A model's outcome is an analysis outcome or an ordinal verdict field; its terms are
        distinct factors (or `subject`, given two subjects), none also held fixed in `within`."""
        self.model_outcome(where, m)
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

    def model_outcome(self, where: Path_, m: RegressionModel) -> None:
        """A bool analysis outcome (logistic regression) or an ordinal verdict field (ordinal
        logistic regression)."""
        if m.outcome is None or m.outcome in self.p.outcomes:
            return
        verdict = self.p.evaluation.verdict
        field = verdict.get(m.outcome)
        if field is not None and field.type == "ordinal":
            return
        ordinal = [n for n, f in verdict.items() if f.type == "ordinal"]
        fits = ", ".join([*self.p.outcomes, *ordinal])
        if field is None:
            what = f"unknown outcome {m.outcome!r}"
        elif field.type == "bool":
            what = f"{m.outcome!r} is a bool field but not one of the analysis outcomes (add it "
            what += "to analysis.outcomes to model it)"
        else:
            article = "an" if field.type[0] in "aeiou" else "a"
            what = f"{m.outcome!r} is {article} {field.type} field, which no model fits"
        raise self.fail(
            where + ("outcome",),
            f"{what}: a model's outcome is an analysis outcome (logistic regression) or an "
            f"ordinal verdict field (ordinal logistic regression); write one of {fits}",
        )

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
