"""The experiment protocol: what a researcher writes in `protocols/*.yaml`.

Every model forbids unknown fields, so a typo is an error with its line, not a silent default.
Cross-references (factor levels named in templates, contrasts, plants) are checked by
`checks/` after loading, which knows where each field sits in the file. The parts live beside
this module: `base` (strict models, ids, model references), `materials` (tasks, plants,
templates), `judging` (the evaluation and its verdict fields) and `hypotheses` (the predictions
and their pre-registered tests); this module puts them together.
"""

from __future__ import annotations

from itertools import combinations, product
from typing import Literal

from pydantic import (
    Field,
    NonNegativeInt,
    PositiveInt,
)

from orchestrator.protocol.base import (
    KEY,
    SLUG,
    GenerationParams,
    Layer,
    ModelRef,
    Scalar,
    Strict,
    Subject,
)
from orchestrator.protocol.hypotheses import Hypothesis, HypothesisTest
from orchestrator.protocol.judging import ComprehensionQuestion, Evaluation, VerdictField
from orchestrator.protocol.materials import (
    Generate,
    Materials,
    Plant,
    PlantWhen,
    Task,
    Templates,
    Tool,
    ToolUse,
    Turn,
)

__all__ = [  # the parts of the schema live beside this module (base, materials, judging)
    "KEY",
    "SLUG",
    "TRAINED",
    "Analysis",
    "ComprehensionQuestion",
    "Constraint",
    "Contrast",
    "Design",
    "Evaluation",
    "Factor",
    "GenerationParams",
    "Generate",
    "Hypothesis",
    "HypothesisTest",
    "Materials",
    "ModelRef",
    "Plant",
    "PlantWhen",
    "Protocol",
    "Qualitative",
    "RegressionModel",
    "Scalar",
    "Screen",
    "Strict",
    "Subject",
    "Task",
    "Templates",
    "Tool",
    "ToolUse",
    "Turn",
    "VerdictField",
]


class Factor(Strict):
    levels: list[str] = Field(
        min_length=2, description="The factor's levels; the first is the reference level."
    )
    description: str = Field("", description="What varying this factor changes in a stimulus.")


class Design(Strict):
    factors: dict[str, Factor] = Field(
        min_length=1,
        description="Named factors crossed with each other and with the subjects to form cells.",
    )
    n_per_cell: PositiveInt = Field(description="Stimuli per cell at full size.")
    pilot_n_per_cell: PositiveInt = Field(2, description="Stimuli per cell with `--pilot`.")
    seed: int = Field(description="Seed for every random choice in stimulus generation.")


class Contrast(Strict):
    name: str = Field(
        pattern=SLUG,
        description="Unique label used in the analysis, the report and `research compare`.",
    )
    factor: str = Field(description="The factor whose levels are compared.")
    treatment: str = Field(description="Level compared ...")
    control: str = Field(description="... against this level.")
    within: dict[str, str] = Field(
        default_factory=dict, description="Other factors held at a level, e.g. planted: planted."
    )
    outcomes: list[str] = Field(
        default_factory=list,
        description="The analysis outcomes this contrast is named for (default: the primary "
        "one). The same comparison on every other outcome is still computed, but reported apart, "
        "under the other outcomes, as `<name> · <outcome>`: a contrast's name never stands "
        "beside an outcome it was not named for.",
    )

    def named_for(self, primary: str) -> list[str]:
        """The outcomes this contrast is named for: `outcomes`, or else the primary one."""
        return self.outcomes or [primary]

    def arm(self, level: str) -> dict[str, str]:
        """The levels that select one arm's items (of each subject): `factor` at `level`, and
        the factors held in `within`."""
        return {self.factor: level, **self.within}


class Constraint(Strict):
    """A verdict the design makes impossible outside some cells, e.g. `complied` where nothing
    was planted. Each primary verdict is checked against it; a violation is flagged at the
    evaluate checkpoint (blocking `--yes` like a data-quality flag) and listed in the report."""

    outcome: str = Field(description="A `bool`, `enum` or `ordinal` verdict field, e.g. complied.")
    value: bool | str = Field(
        True,
        description="The value that is impossible outside `requires`: true (the default) for a "
        "bool field; one of the field's values (enum) or levels (ordinal) otherwise.",
    )
    requires: dict[str, str | list[str]] = Field(
        min_length=1,
        description="Factor (or `subject`) → the level, or list of levels, outside which "
        "`outcome: value` cannot occur, e.g. {planted: planted}.",
    )
    why: str = Field("", description="Why the design rules it out, in words; shown with it.")

    def allowed(self) -> dict[str, list[str]]:
        """`requires` with every condition as a list of levels."""
        return {k: [v] if isinstance(v, str) else list(v) for k, v in self.requires.items()}


class RegressionModel(Strict):
    """A regression of one outcome on crossed factors, with clustered standard errors: logistic
    for a bool outcome, ordinal logistic (proportional odds) for an ordinal one."""

    name: str = Field(pattern=SLUG, description="Label used in the analysis and the report.")
    outcome: str | None = Field(
        None,
        description="An analysis outcome (a bool verdict field: logistic regression) or an "
        "ordinal verdict field (ordinal logistic regression, coefficients in log cumulative "
        "odds of a higher level); default the primary.",
    )
    terms: list[str] = Field(
        min_length=1,
        description="Factors (or `subject`) crossed in the model: [framing, subject] fits "
        "framing * subject, whose last coefficient is the framing × model interaction. Each "
        "factor's first level (the first subject) is the reference.",
    )
    within: dict[str, str] = Field(
        default_factory=dict, description="Fit on the items at these levels, e.g. planted: planted."
    )
    cluster: Literal["task", "none"] = Field(
        "task",
        description="Cluster standard errors by the task an item was built from (items of one "
        "task are not independent), or not at all.",
    )

    def coefficients(self, levels: dict[str, list[str]]) -> list[list[tuple[str, str]]]:
        """Each coefficient but the intercept as its (term, level) pairs, in the fit's order:
        main effects, then two-way interactions, ...; a term's reference level has none."""
        out = []
        for r in range(1, len(self.terms) + 1):
            for subset in combinations(self.terms, r):
                for lvs in product(*(levels[t][1:] for t in subset)):
                    out.append(list(zip(subset, lvs, strict=True)))
        return out


def coefficient_name(pairs: list[tuple[str, str]]) -> str:
    """How the report names a coefficient: `framing[deu]:subject[claude-haiku]`."""
    return ":".join(f"{term}[{level}]" for term, level in pairs)


class AssumedRate(Strict):
    when: dict[str, str] = Field(
        default_factory=dict,
        description="Factor levels (or subject: id) the rate applies to; the most specific "
        "match wins.",
    )
    rate: float = Field(ge=0.0, le=1.0, description="Assumed rate of the primary outcome.")


class Qualitative(Strict):
    """The analyst agent: reads the statistics and sampled responses, writes the qualitative
    section, quoting items by id; every quote is checked verbatim against its record."""

    focus: str = Field(
        min_length=1, description="What to look for, e.g. how reasoning changed between framings."
    )
    sample_per_cell: PositiveInt = Field(4, description="Responses sampled per cell for it.")
    model: ModelRef | None = Field(None, description="Default: the evaluation judge.")


class Analysis(Strict):
    primary: str = Field(description="The primary outcome: a bool verdict field.")
    outcomes: list[str] = Field(
        default_factory=list, description="Further bool verdict fields to tabulate."
    )
    contrasts: list[Contrast] = Field(
        default_factory=list, description="Pre-registered comparisons, computed per subject."
    )
    correction: Literal["holm", "bonferroni", "fdr_bh", "none"] = Field(
        "holm",
        description="Multiple-comparison correction over the contrasts' Fisher p-values, per "
        "outcome (statsmodels multipletests).",
    )
    models: list[RegressionModel] = Field(
        default_factory=list,
        description="Pre-registered regressions (logistic, or ordinal for an ordinal outcome), "
        "e.g. the framing × model interaction.",
    )
    constraints: list[Constraint] = Field(
        default_factory=list,
        description="Verdicts the design makes impossible outside some cells, checked on every "
        "item: e.g. complied requires planted: planted.",
    )
    assumed_rates: list[AssumedRate] = Field(
        default_factory=list,
        description="Base rates the design checkpoint's forecast of interval widths assumes "
        "(default 0.5, the widest).",
    )
    qualitative: Qualitative | None = Field(
        None, description="The analyst agent's qualitative section; omit to skip it."
    )


ProbeName = Literal["surprisal", "author", "followup", "linear", "tokens"]
TRAINED = ("linear", "tokens")
"""Probes that apply the protocol's trained probes (`probes.train`), each in turn."""


class TrainedProbe(Strict):
    """A linear activation probe the worker trains on its own model before the probe stage."""

    dataset: str = Field(
        min_length=1,
        description="Contrast dataset (JSONL as in protocols/data/), relative to the protocol "
        "file and inside its folder; copied into the run directory when the run starts.",
    )
    variant: Literal["as_written", "same_statement"] = Field(
        "as_written",
        description="same_statement: both lines of a pair read meta.true_statement after their "
        "own instruction (the original instructed-pairs recipe).",
    )
    layer: Layer | None = Field(
        None,
        description="Residual layer: a number, or a share of the model's depth between 0 and 1 "
        "(0.75: three quarters up, whatever the model); default the middle.",
    )
    c: float = Field(1.0, gt=0, description="Inverse L2 strength of the logistic regression.")
    control: str | None = Field(
        None,
        description="JSONL of negatives for the 1%-FPR threshold (default: the test split's "
        "negatives), relative to the protocol file.",
    )
    transfer: str | None = Field(
        None,
        description="Out-of-distribution set (JSONL as `dataset`, every line read) in which the "
        "label is stated neither in the text nor in its context, relative to the protocol file. "
        "The probe stage scores the probe, a bag of words and the same recipe on a random-weight "
        "copy of the model on it, and the report gives the probe's verdict from them; without "
        "one the probe is reported as not tested out of distribution.",
    )


class Probes(Strict):
    """Truesight readouts run by the local worker on every response (the `probe` stage)."""

    run: list[ProbeName] = Field(
        min_length=1, description="Which probes to run on each response, in this order."
    )
    context: Literal["prompt", "none"] = Field(
        "prompt",
        description="Condition surprisal on the prompt the subject saw (`prompt`: how "
        "surprising the answer is as a continuation, the words-in-the-mouth signal) or on "
        "nothing (`none`: how surprising the text is on its own).",
    )
    params: dict[ProbeName, dict[str, object]] = Field(
        default_factory=dict,
        description="Parameters per probe, passed to the worker (see GET /v1/probes).",
    )
    train: dict[str, TrainedProbe] = Field(
        default_factory=dict,
        description="Trained probes by name, applied by `linear` and `tokens`; the worker "
        "trains each once per model and dataset and reuses it after.",
    )
    batch_size: PositiveInt = Field(16, description="Texts per request to the worker.")
    model: str | None = Field(
        None,
        description="Model the worker loads for probes when the run starts it (default "
        "RESEARCH_LOCAL_MODEL or smollm2, which is instruction-tuned: on a GPU box use a base "
        "model). A worker already running is used as it is; every result names its model.",
    )


REFUSAL = (
    r"^\W*(I'?m sorry,? but |I apologi[sz]e,? but |Sorry,? but )?"
    r"(I can(no|')t|I cannot|I won'?t|I'?m (not able|unable) to|I will not|I must decline)"
    r"\b.{0,60}\b(help|assist|comply|do that|provide|fulfil|fulfill|with (this|that))"
)
"""The built-in refusal pattern: an English refusal in the answer's opening words."""


class Duplicates(Strict):
    flag: bool = Field(
        True,
        description="Flag answers whose text (case and spacing aside) another item's answer "
        "also has: copies are a data-quality problem for essays, expected for short answers.",
    )
    min_length: NonNegativeInt = Field(
        0,
        description="Answers shorter than this many characters (spacing collapsed) are never "
        "flagged as duplicates, e.g. 40 for one-word or one-number answers.",
    )


class Screen(Strict):
    """The screen stage's data-quality rules; the defaults flag everything it can."""

    truncated: bool = Field(True, description="Flag answers cut off at max_tokens.")
    empty: bool = Field(True, description="Flag empty (or whitespace-only) answers.")
    duplicates: Duplicates = Field(default_factory=Duplicates)
    refusals: list[str] = Field(
        default_factory=lambda: [REFUSAL],
        description="Regular expressions (Python syntax, case-insensitive, `.` matches newlines) "
        "searched for in the first 300 characters of each answer; a match flags it refused. "
        "Anchor one with `^` to match only at the start. Default: one pattern for English "
        "refusals; `[]` flags only the API's own refusals (stop_reason refusal).",
    )


Stage = Literal["design", "evaluate", "report"]


class Protocol(Strict):
    id: str = Field(pattern=SLUG, description="Protocol id; prefixes run ids.")
    title: str = Field(min_length=1)
    question: str = Field(min_length=1, description="The research question, in one or two lines.")
    hypotheses: list[Hypothesis] = Field(default_factory=list)
    design: Design
    tools: list[Tool] = Field(
        default_factory=list,
        description="Tools declared to the subject with every call (its conversation may call "
        "them in `tool_use` turns; a call in its reply is shown to judges).",
    )
    materials: Materials
    subjects: list[Subject] = Field(min_length=1, description="Subject models; a factor of cells.")
    evaluation: Evaluation
    checkpoints: list[Stage] = Field(
        default_factory=lambda: ["design", "evaluate", "report"],
        description="Stages after which the run pauses for a human decision.",
    )
    analysis: Analysis
    probes: Probes | None = Field(
        None, description="Truesight probes on the local worker; omit to run none."
    )
    screen: Screen = Field(
        default_factory=Screen, description="What the screen stage flags as data quality."
    )

    @property
    def outcomes(self) -> list[str]:
        return [self.analysis.primary] + [
            o for o in self.analysis.outcomes if o != self.analysis.primary
        ]
