"""Each hypothesis' test names a statistic the analysis computes: a contrast, two contrasts whose
arms can be told apart, a contrast in two subjects, or a model's coefficient, on an outcome the
analysis has, with a direction its margin can show."""

from __future__ import annotations

from pathlib import Path

from orchestrator.protocol.checks.base import Checker
from orchestrator.protocol.hypotheses import KINDS, HypothesisTest, term_key
from orchestrator.protocol.schema import Contrast, Protocol, RegressionModel, coefficient_name
from orchestrator.protocol.yamlmap import Path_

KINDS_TEXT = (
    "`contrast: <name>` (its difference, per subject), `difference: [<a>, <b>]` (a's difference "
    "minus b's, per subject), `between_subjects: <name>` (the contrast in one subject minus "
    "another) or `model: <name>` with `term: <coefficient>`"
)


def check_hypotheses(protocol: Protocol, path: Path, lines: dict[Path_, int]) -> None:
    """Each rule in turn; the first broken one raises."""
    _Hypotheses(protocol, path, lines).run()


class _Hypotheses(Checker):
    def run(self) -> None:
        for i, h in enumerate(self.p.hypotheses):
            several = isinstance(h.test, list)
            for j, test in enumerate(h.tests):
                where = ("hypotheses", i, "test") + ((j,) if several else ())
                self.one_kind(where, test)
                self.margin(where, test)
                self.subjects(where, test)
                self.pooled(where, test)
                if test.model is not None:
                    self.model_term(where, test)
                else:
                    self.rate_test(where, test)

    def one_kind(self, where: Path_, t: HypothesisTest) -> None:
        named = [k for k in KINDS if getattr(t, k) is not None]
        if not named:
            raise self.fail(where, f"the test names no statistic: write one of {KINDS_TEXT}")
        if len(named) > 1:
            raise self.fail(
                where + (named[1],),
                f"the test names both {named[0]} and {named[1]}: one test decides one statistic; "
                "keep one, or write `test:` as a list of tests that must all hold",
            )
        if t.term is not None and t.model is None:
            raise self.fail(
                where + ("term",),
                "term names a coefficient of a regression model: add `model: <name>` (one of "
                "analysis.models), or remove term",
            )

    def margin(self, where: Path_, t: HypothesisTest) -> None:
        if t.direction == "equal" and t.margin == 0:
            raise self.fail(
                where + ("direction",),
                "`equal` predicts |Δ| < margin, which a margin of 0 can never show: give the "
                "largest difference that still counts as none, e.g. margin: 0.05",
            )

    def subjects(self, where: Path_, t: HypothesisTest) -> None:
        ids = [s.id for s in self.p.subjects]
        for k, s in enumerate(t.subjects or []):
            if s not in ids:
                raise self.fail(
                    where + ("subjects", k), f"unknown subject {s!r} (subjects: {', '.join(ids)})"
                )
            if s in (t.subjects or [])[:k]:
                raise self.fail(where + ("subjects", k), f"{s!r} is named twice")
        if t.subjects == []:
            raise self.fail(where + ("subjects",), "name at least one subject, or leave it out")
        if t.between_subjects is None:
            return
        if "per_subject" in t.model_fields_set:
            raise self.fail(
                where + ("per_subject",),
                "between_subjects compares one effect across two subjects, so there is nothing "
                "to require per subject: remove per_subject",
            )
        if t.subjects is None and len(ids) != 2:
            raise self.fail(
                where + ("between_subjects",),
                f"with {len(ids)} subjects, name the two compared: subjects: [<a>, <b>] (the "
                "estimate is a's difference minus b's)",
            )
        if t.subjects is not None and len(t.subjects) != 2:
            raise self.fail(
                where + ("subjects",),
                "between_subjects compares two subjects: name exactly two, subjects: [<a>, <b>]",
            )

    def pooled(self, where: Path_, t: HypothesisTest) -> None:
        """`per_subject: pooled` decides a contrast on its estimate over every subject."""
        if t.per_subject != "pooled" or t.between_subjects is not None or t.model is not None:
            return  # those two refuse per_subject themselves
        if t.difference is not None:
            raise self.fail(
                where + ("per_subject",),
                "per_subject: pooled decides a contrast on its estimate pooled across subjects; "
                "a difference of two contrasts has no pooled estimate here: use per_subject: "
                "all or any, or test the interaction as a model term (analysis.models)",
            )
        n = len(self.p.subjects)
        if n < 2:
            raise self.fail(
                where + ("per_subject",),
                f"per_subject: pooled pools the contrast over subjects, and the protocol has "
                f"{n}: remove per_subject (the one subject's contrast is tested)",
            )
        if t.subjects is not None:
            raise self.fail(
                where + ("subjects",),
                "per_subject: pooled estimates the contrast over every subject of the protocol, "
                "as the report's pooled table does: remove subjects",
            )

    def rate_test(self, where: Path_, t: HypothesisTest) -> None:
        """contrast, difference, between_subjects: contrasts that exist, on an outcome."""
        if t.outcome is not None and t.outcome not in self.p.outcomes:
            raise self.fail(
                where + ("outcome",),
                f"unknown outcome {t.outcome!r} (analysis outcomes: {', '.join(self.p.outcomes)})",
            )
        if t.contrast is not None:
            self.contrast(where + ("contrast",), t.contrast)
        if t.between_subjects is not None:
            self.contrast(where + ("between_subjects",), t.between_subjects)
        if t.difference is not None:
            a, b = (self.contrast(where + ("difference", k), n) for k, n in enumerate(t.difference))
            self.separable(where + ("difference",), a, b)

    def contrast(self, where: Path_, name: str) -> Contrast:
        contrasts = {c.name: c for c in self.p.analysis.contrasts}
        if name not in contrasts:
            known = ", ".join(contrasts) or "none yet"
            raise self.fail(
                where,
                f"unknown contrast {name!r} (analysis.contrasts: {known}): name one of them, or "
                "add it under analysis.contrasts (name, factor, treatment, control, within)",
            )
        return contrasts[name]

    def separable(self, where: Path_, a: Contrast, b: Contrast) -> None:
        """The difference of two contrasts combines their four arms: any two are the same items
        (they count once) or share none (independent), never part of each other's items."""
        if a.name == b.name:
            raise self.fail(where, f"{a.name} minus itself is always zero: name two contrasts")
        for side_a, level_a in (("treatment", a.treatment), ("control", a.control)):
            for side_b, level_b in (("treatment", b.treatment), ("control", b.control)):
                arm_a, arm_b = a.arm(level_a), b.arm(level_b)
                shared = arm_a.keys() & arm_b.keys()
                if arm_a == arm_b or any(arm_a[f] != arm_b[f] for f in shared):
                    continue
                raise self.fail(
                    where,
                    f"{a.name}'s {side_a} arm ({_levels(arm_a)}) and {b.name}'s {side_b} arm "
                    f"({_levels(arm_b)}) share some items but not all, so their difference has "
                    "no simple interval: hold the same factors in both contrasts' `within`, or "
                    "test the interaction as a model term",
                )

    def model_term(self, where: Path_, t: HypothesisTest) -> None:
        models = {m.name: m for m in self.p.analysis.models}
        if t.model not in models:
            known = ", ".join(models) or "none yet"
            raise self.fail(
                where + ("model",),
                f"unknown model {t.model!r} (analysis.models: {known}): name one of them, or add "
                "it under analysis.models (name, outcome, terms)",
            )
        m = models[t.model]
        names = [coefficient_name(pairs) for pairs in m.coefficients(self._levels(m))]
        known = f"model {m.name}'s coefficients are {', '.join(names)}; write e.g. "
        known += f"term: {names[-1]!r}"
        if t.term is None:
            raise self.fail(where + ("model",), f"name the coefficient tested: {known}")
        if term_key(t.term) not in {term_key(n) for n in names}:
            raise self.fail(where + ("term",), f"unknown term {t.term!r}: {known}")
        fitted = m.outcome or self.p.analysis.primary
        if t.outcome is not None and t.outcome != fitted:
            raise self.fail(
                where + ("outcome",),
                f"model {m.name} fits {fitted}: leave outcome out, or write outcome: {fitted}",
            )
        if t.margin:
            raise self.fail(
                where + ("margin",),
                "margin is a difference of rates, and a model term is in log-odds: leave margin "
                "out, or test a contrast (`contrast:` or `between_subjects:`) with the margin",
            )
        given = {"subjects", "per_subject"} & t.model_fields_set
        if given:
            raise self.fail(
                where + (sorted(given)[0],),
                "a model's term is one coefficient fitted over all its subjects: remove "
                f"{' and '.join(sorted(given))} (or test a contrast per subject)",
            )

    def _levels(self, m: RegressionModel) -> dict[str, list[str]]:
        subjects = [s.id for s in self.p.subjects]
        return {t: subjects if t == "subject" else self.levels[t] for t in m.terms}


def _levels(arm: dict[str, str]) -> str:
    return ", ".join(f"{f}={lv}" for f, lv in arm.items())
