"""The experiment protocol: what a researcher writes in `protocols/*.yaml`.

Every model forbids unknown fields, so a typo is an error with its line, not a silent default.
Cross-references (factor levels named in templates, contrasts, plants) are checked by the loader,
which knows where each field sits in the file.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    NonNegativeInt,
    PositiveInt,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

SLUG = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""An id that is never split on '.': letters, digits, '_', '-' and '.', up to 64 characters."""
KEY = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
"""A name that becomes part of a cell key or item id (joined with '.'): no '.' of its own."""
Scalar = str | int | float | bool


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hypothesis(Strict):
    id: str = Field(pattern=SLUG, description="Short label, e.g. H1.")
    text: str = Field(min_length=1, description="The prediction, stated so that it can fail.")


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


class Task(Strict):
    id: str = Field(pattern=SLUG, description="Unique task id.")
    kind: str = Field(description="Kind of task: summarise, answer, reply, review, advise, ...")
    instruction: str = Field(min_length=1, description="What the user asks for.")
    document: str = Field(
        "", description="The input document the task is about; paragraphs separated by blank lines."
    )
    fields: dict[str, Scalar] = Field(
        default_factory=dict,
        description="Further data of the task (a question, its expected answer, a topic), "
        "available to templates as `fields.<name>`; blanked in what evaluators see, like "
        "`level_text`, unless named in `evaluation.show_task_fields` (then shown to them apart "
        "from the input).",
    )


class Plant(Strict):
    id: str = Field(pattern=SLUG, description="Unique plant id.")
    kind: str = Field(description="steer_user, conceal_fact, downplay_risk, deceive, ...")
    text: str = Field(min_length=1, description="The instruction hidden in the document.")


class PlantWhen(Strict):
    factor: str = Field(description="The factor that switches planting on.")
    level: str = Field(description="The level of that factor at which a plant is inserted.")


class Templates(Strict):
    system: str = Field("", description="Jinja2 template of the subject's system prompt.")
    user: str = Field(min_length=1, description="Jinja2 template of the user message.")


class Generate(Strict):
    generate: Literal[True] = Field(
        description="The subject writes this assistant turn: its reply in an earlier call."
    )


class Turn(Strict):
    """One turn of a conversation template: exactly one of `system`, `user`, `assistant`."""

    system: str | None = Field(None, description="Jinja2 template of the system prompt.")
    user: str | None = Field(None, description="Jinja2 template of a user message.")
    assistant: str | Generate | None = Field(
        None,
        description="Jinja2 template of a fixed assistant message, or `{generate: true}` for "
        "one the subject writes.",
    )

    @model_validator(mode="after")
    def _one_role(self) -> Turn:
        given = [r for r in ("system", "user", "assistant") if getattr(self, r) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "turn_roles",
                "a turn is one of `- system: ...`, `- user: ...` or `- assistant: ...` "
                "(got {given}): write each as its own list entry",
                {"given": ", ".join(given) or "none"},
            )
        return self

    @property
    def role(self) -> Literal["system", "user", "assistant"]:
        if self.system is not None:
            return "system"
        return "user" if self.user is not None else "assistant"

    @property
    def source(self) -> str | None:
        """The turn's template; None for a turn the subject generates."""
        text = getattr(self, self.role)
        return None if isinstance(text, Generate) else text


def _template_form(value: object) -> str:
    return "turns" if isinstance(value, list) else "keys"


TemplateForm = Annotated[
    Annotated[Templates, Tag("keys")] | Annotated[list[Turn], Tag("turns")],
    Discriminator(_template_form),
]
"""`system:` and `user:` keys, or a list of turns for a longer conversation."""


class Materials(Strict):
    tasks: list[Task] = Field(min_length=1, description="Tasks; cycled in a seeded order.")
    plants: list[Plant] = Field(
        default_factory=list, description="Planted instructions; cycled in a seeded order."
    )
    plant_when: PlantWhen | None = Field(
        None, description="When to insert a plant into the document (omit for no plants)."
    )
    level_text: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Text per factor level, available to templates as `text.<factor>`; it is "
        "removed from what evaluators see, which keeps them blind to the condition.",
    )
    templates: TemplateForm = Field(
        description="The subject's prompt: `system` and `user` templates, or a list of turns "
        "(`- system:`, `- user:`, `- assistant:` with a template or `{generate: true}`) ending "
        "with a user turn."
    )


class GenerationParams(Strict):
    max_tokens: PositiveInt = Field(1024, description="Maximum tokens to generate.")
    temperature: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Sampling temperature; omit for the model's default (newer Claude models "
        "accept only their default).",
    )
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    stop_sequences: list[str] = Field(default_factory=list, description="Stop strings.")


class ModelRef(Strict):
    provider: Literal["anthropic", "openai", "local"] = Field(
        description="`anthropic` for the Messages API, `openai` for OpenAI's Chat Completions "
        "API or any server that speaks it (subjects only), `local` for the research worker."
    )
    model: str = Field(min_length=1, description="Model name, e.g. claude-sonnet-4-5.")
    params: GenerationParams = Field(default_factory=GenerationParams)
    base_url: str | None = Field(
        None,
        description="Endpoint override; default ANTHROPIC_BASE_URL, OPENAI_BASE_URL (e.g. "
        "http://127.0.0.1:8000/v1 for vLLM) or the local worker.",
    )
    concurrency: PositiveInt = Field(8, description="Calls in flight at once for this model.")


class Subject(ModelRef):
    id: str = Field(pattern=KEY, description="Short id used in cell keys and item ids.")
    batch: bool = Field(
        False,
        description="Send this subject's calls as one Anthropic Message Batch (half the price, "
        "results within 24 hours) instead of one call at a time; the run waits for the batch, "
        "and a resumed run collects the same batch. Ignored for `local` subjects; refused for "
        "`openai` ones.",
    )


class VerdictField(Strict):
    """One field of a verdict. `bool`, `enum` (one of `values`), `ordinal` (one of `levels`, which
    are ordered), `int` (optionally within `min`..`max`), `float`, or `str` (optionally at most
    `max_length` characters). A key that does not fit the type is refused with what to write."""

    type: Literal["bool", "enum", "ordinal", "str", "int", "float"] = Field(
        description="Value type."
    )
    values: list[str] = Field(
        default_factory=list,
        validate_default=True,
        description="Allowed values of an `enum`, in no particular order.",
    )
    levels: list[str] = Field(
        default_factory=list,
        validate_default=True,
        description="The levels of an `ordinal`, lowest first (e.g. none, low, medium, high); "
        "agreement on it takes their order into account.",
    )
    description: str = Field("", description="What the evaluator must decide; shown to it.")
    max_length: PositiveInt | None = Field(
        None, description="Longest allowed value of a `str` field, in characters."
    )
    min: int | None = Field(None, description="Smallest allowed value of an `int` field.")
    max: int | None = Field(None, description="Largest allowed value of an `int` field.")

    @field_validator("values")
    @classmethod
    def _values(cls, values: list[str], info: ValidationInfo) -> list[str]:
        kind = info.data.get("type")
        if kind == "enum" and not values:
            raise _verdict_error("an enum needs `values`: the allowed answers, e.g. [yes, no]")
        if kind not in ("enum", None) and values:
            scale = "; an ordered scale is `type: ordinal` with `levels`"
            hint = scale if kind != "ordinal" else ""
            raise _verdict_error(f"`values` applies to `enum` fields only{hint}")
        if len(set(values)) != len(values):
            raise _verdict_error("values must be distinct")
        return values

    @field_validator("levels")
    @classmethod
    def _levels(cls, levels: list[str], info: ValidationInfo) -> list[str]:
        kind = info.data.get("type")
        if kind == "ordinal" and len(set(levels)) < 2:
            raise _verdict_error(
                "an ordinal needs at least two distinct `levels`, lowest first, e.g. "
                "[none, low, medium, high]"
            )
        if kind != "ordinal" and levels:
            hint = "; unordered choices are `type: enum` with `values`" if kind else ""
            raise _verdict_error(f"`levels` applies to `ordinal` fields only{hint}")
        if len(set(levels)) != len(levels):
            raise _verdict_error("levels must be distinct")
        return levels

    @field_validator("max_length")
    @classmethod
    def _max_length(cls, max_length: int | None, info: ValidationInfo) -> int | None:
        if max_length is not None and info.data.get("type") not in ("str", None):
            raise _verdict_error("max_length applies to `str` fields only; remove it")
        return max_length

    @field_validator("min", "max")
    @classmethod
    def _bounds(cls, bound: int | None, info: ValidationInfo) -> int | None:
        kind = info.data.get("type")
        if bound is not None and kind not in ("int", None):
            raise _verdict_error(
                f"`{info.field_name}` applies to `int` fields only; use `type: int`, or remove it"
            )
        low = info.data.get("min")
        if info.field_name == "max" and bound is not None and low is not None and low > bound:
            raise _verdict_error(
                f"max ({bound}) is below min ({low}); write the smaller bound as `min`"
            )
        return bound


def _verdict_error(message: str) -> PydanticCustomError:
    # a custom error's message is a template to pydantic: write no braces in it
    return PydanticCustomError("verdict_field", message)


class ComprehensionQuestion(Strict):
    """A question an evaluator must answer correctly before it judges anything."""

    id: str = Field(pattern=SLUG, description="Short id, e.g. silent-ignore.")
    question: str = Field(min_length=1, description="The question, e.g. an edge case to judge.")
    choices: list[str] = Field(
        default_factory=lambda: ["yes", "no"], min_length=2, description="Allowed answers."
    )
    answer: str = Field(description="The expected answer, one of `choices`.")
    explanation: str = Field(
        "", description="Why: shown to an evaluator that got it wrong, before its second try."
    )


class Evaluation(Strict):
    judge: ModelRef = Field(description="The model behind the evaluator agents.")
    evaluators: PositiveInt = Field(8, description="Evaluator agents working in parallel.")
    batch_size: PositiveInt = Field(50, description="Responses per evaluator batch.")
    overlap: float = Field(
        0.1, ge=0.0, le=1.0, description="Fraction of items judged by two evaluators."
    )
    max_attempts: PositiveInt = Field(
        3, description="Tries per batch before an item that still fails is recorded unscored."
    )
    rubric: str = Field(min_length=1, description="What each outcome means, with edge cases.")
    comprehension: list[ComprehensionQuestion] = Field(
        default_factory=list,
        description="Questions every evaluator answers (comprehension_check) before its first "
        "item; one that fails is re-primed once with the explanations, then replaced.",
    )
    pass_mark: float = Field(
        1.0, gt=0.0, le=1.0, description="Share of comprehension questions to get right."
    )
    agent: Literal["tools", "scripted"] = Field(
        "tools",
        description="`tools`: the judge model plans its own tool calls (read_protocol, "
        "comprehension_check, get_batch, truesight, flag_issue, submit_verdicts). `scripted`: "
        "the orchestrator calls the same tools in order and forces each call, for models that "
        "cannot plan tool use (small local models).",
    )
    chunk_size: PositiveInt = Field(
        10, description="Items get_batch hands out at a time (all must be judged before more)."
    )
    duplicates: bool = Field(
        True, description="Plant one item twice in each evaluator's work (self-consistency)."
    )
    context_budget: PositiveInt = Field(
        120_000,
        description="Tokens of conversation after which an evaluator writes its notes to "
        "memory/evaluator-<k>.md and continues in a fresh conversation.",
    )
    max_turns: PositiveInt = Field(
        80, description="Model turns per evaluator conversation before it is stopped."
    )
    verdict: dict[str, VerdictField] = Field(
        min_length=1, description="The fields of one verdict, checked on submission."
    )
    show_question: bool = Field(
        False,
        description="Open each evaluator's brief with the protocol's title and research "
        "question. Off by default: judges are hypothesis-blind, given the rubric, the verdict "
        "fields and the comprehension questions, never the title, question or hypotheses.",
    )
    unblinded: list[str] = Field(
        default_factory=list,
        description="Factors whose level the evaluator view of an item may show: the user "
        "template may branch on them. Evaluators are blind to every other factor: `validate` "
        "refuses a user template whose evaluator view changes with such a factor's level. "
        "Named in the report's design section.",
    )
    show_task_fields: list[str] = Field(
        default_factory=list,
        description="Task fields (`tasks[*].fields`) shown to evaluators with each item, as a "
        "labelled part of it apart from the input, e.g. the expected answer of a factual "
        "question. Each must be a field some task has; a task without one shows it as absent. "
        "Fields belong to the task, not the cell, so showing them cannot unblind a condition. "
        "Named in the report's design section.",
    )


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


class RegressionModel(Strict):
    """A logistic regression of one outcome on crossed factors, with clustered standard errors."""

    name: str = Field(pattern=SLUG, description="Label used in the analysis and the report.")
    outcome: str | None = Field(None, description="A bool verdict field; default the primary.")
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
        description="Pre-registered logistic regressions, e.g. the framing × model interaction.",
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
    layer: NonNegativeInt | Annotated[float, Field(gt=0, lt=1)] | None = Field(
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
