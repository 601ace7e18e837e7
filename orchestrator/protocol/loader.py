"""Load a protocol file into a validated `Protocol`, or fail with `file:line: field: message`.

Loading checks what pydantic sees (types, unknown and missing fields, n <= 0) and what it cannot:
duplicate keys and ids, references between sections (factor levels, plants, contrasts, outcomes)
and the templates (syntax, sandbox, undefined names, branches on levels that do not exist), which
are rendered once per cell so a broken prompt fails before any call is made.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml
from jinja2 import TemplateError, UndefinedError
from jinja2.exceptions import SecurityError
from pydantic import ValidationError

from orchestrator.errors import ProtocolError
from orchestrator.protocol.blinding import check_blinding
from orchestrator.protocol.schema import (
    KEY,
    SLUG,
    TRAINED,
    ModelRef,
    Protocol,
    RegressionModel,
    Task,
)
from orchestrator.protocol.stimuli import cells, template_context
from orchestrator.protocol.templates import check_syntax, level_references, render
from orchestrator.protocol.yamlmap import (
    DuplicateKey,
    Path_,
    dotted,
    line_of,
    load_with_lines,
    template_line,
)

RESERVED = {"subject", "factors", "text", "task", "plant", "document", "replicate", "fields"}
KEY_NAME = re.compile(KEY)
ALLOWED = {
    KEY: "letters, digits, '_' and '-' (no '.': it becomes part of cell keys and item ids, "
    "which are joined with '.')",
    SLUG: "letters, digits, '_', '-' and '.'",
}
"""What each name pattern allows, in words: a raw regex helps no one."""


@dataclass(frozen=True)
class LoadedProtocol:
    protocol: Protocol
    path: Path
    text: str
    sha256: str

    def data_files(self) -> list[str]:
        """Files the protocol refers to, relative to its folder; a run keeps copies of them."""
        if self.protocol.probes is None:
            return []
        files = set()
        for t in self.protocol.probes.train.values():
            files.add(t.dataset)
            if t.control is not None:
                files.add(t.control)
        return sorted(files)


def load_protocol(path: str | Path) -> LoadedProtocol:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ProtocolError(f"cannot read the file: {e.strerror}", file=path) from e
    text = raw.decode("utf-8", errors="replace")
    return load_protocol_text(text, path, sha256=hashlib.sha256(raw).hexdigest())


def load_protocol_text(text: str, path: Path, *, sha256: str | None = None) -> LoadedProtocol:
    if not text.strip():
        raise ProtocolError(
            "the file is empty; a protocol needs at least id, design, ...", file=path
        )
    try:
        data, lines = load_with_lines(text)
    except DuplicateKey as e:
        raise ProtocolError(
            "this key is given twice", file=path, line=e.line, field=dotted(e.path)
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        line = mark.line + 1 if mark else None
        raise ProtocolError(f"YAML syntax error: {problem}", file=path, line=line) from None
    if data is None:
        raise ProtocolError("the file holds no fields (only comments or blank lines)", file=path)
    if not isinstance(data, dict):
        raise ProtocolError("the top level must be a mapping of fields", file=path, line=1)
    try:
        protocol = Protocol.model_validate(data)
    except ValidationError as e:
        raise _from_validation(e, path, lines) from None
    check = _Checker(protocol, path, lines)
    check.references()
    check.templates()  # the subject's view, every task in every cell
    check_blinding(protocol, path, lines)  # the evaluators' view
    check.probes()
    digest = sha256 or hashlib.sha256(text.encode()).hexdigest()
    return LoadedProtocol(protocol, path, text, digest)


def _from_validation(e: ValidationError, path: Path, lines: dict[Path_, int]) -> ProtocolError:
    errors = []
    for err in e.errors():
        loc = tuple(err["loc"])
        kind, msg = err["type"], err["msg"]
        if kind == "extra_forbidden":
            msg = _unknown_field(loc)
        elif kind == "missing":
            msg = "missing required field"
        elif kind == "string_pattern_mismatch":
            msg = name_problem(err["input"], err["ctx"]["pattern"])
        errors.append(ProtocolError(msg, file=path, line=line_of(lines, loc), field=dotted(loc)))
    first = errors[0]
    first.others = errors[1:]
    return first


def _unknown_field(loc: Path_) -> str:
    if loc[:2] == ("materials", "templates") and len(loc) == 3:
        return (
            "unknown template: templates take `system` and `user` (a list of turns for longer "
            "conversations is planned, not yet supported)"
        )
    if loc[:2] == ("materials", "tasks") and len(loc) == 4:
        return (
            "unknown field: tasks take id, kind, instruction and document; put further data "
            "under `fields:`, e.g. fields: {answer: Paris}, and use it as {{ fields.answer }}"
        )
    return "unknown field"


def name_problem(value: object, pattern: str = KEY) -> str:
    """Why `value` is not a name, in words, with what to write instead."""
    allowed = ALLOWED.get(pattern, f"text matching {pattern}")
    return (
        f"{value!r} is not a valid name: use {allowed}, starting with a letter or digit, at "
        "most 64 characters (e.g. claude-sonnet, framing_by_model)"
    )


class _Checker:
    def __init__(self, protocol: Protocol, path: Path, lines: dict[Path_, int]):
        self.p, self.path, self.lines = protocol, path, lines
        self.levels = {name: f.levels for name, f in protocol.design.factors.items()}

    def fail(self, where: Path_, message: str, line: int | None = None) -> ProtocolError:
        line = line if line is not None else line_of(self.lines, where)
        return ProtocolError(message, file=self.path, line=line, field=dotted(where))

    def references(self) -> None:
        """Cross-references between sections, each rule in turn; the first broken one raises."""
        self.sizes()
        self.unique_ids()
        self.factor_names()
        self.plant_when()
        self.level_texts()
        self.comprehension_answers()
        self.outcomes_are_bool()
        self.contrast_levels()
        for i, model in enumerate(self.p.analysis.models):
            self.model_spec(("analysis", "models", i), model)
        self.assumed_rate_conditions()
        self.screen_patterns()
        self.providers()

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

    def screen_patterns(self) -> None:
        """Each refusal pattern of the screen stage compiles."""
        for i, pattern in enumerate(self.p.screen.refusals):
            try:
                re.compile(pattern)
            except re.error as e:
                raise self.fail(
                    ("screen", "refusals", i),
                    f"not a regular expression: {e}; write a Python regex, e.g. "
                    "'^I (can.t|won.t) help', and escape literal ( [ . * + ? with a backslash",
                ) from None

    def providers(self) -> None:
        """`provider: openai` serves subjects called one at a time: the Message Batches API and
        the agents' tool use are the Anthropic API's."""
        for i, s in enumerate(self.p.subjects):
            if s.provider == "openai" and s.batch:
                raise self.fail(
                    ("subjects", i, "batch"),
                    "batch: true sends calls through Anthropic's Message Batches API, which "
                    "openai subjects cannot use: remove `batch: true` to call this subject "
                    "online, or use provider: anthropic",
                )
        agents: list[tuple[Path_, str, ModelRef]] = [
            (("evaluation", "judge"), "the evaluator agents use", self.p.evaluation.judge)
        ]
        if (q := self.p.analysis.qualitative) is not None and q.model is not None:
            agents.append((("analysis", "qualitative", "model"), "the analyst agent uses", q.model))
        for where, who, ref in agents:
            if ref.provider == "openai":
                raise self.fail(
                    (*where, "provider"),
                    f"{who} Anthropic's tool use, which the openai provider does not "
                    "map yet: use provider: anthropic (or local) here; openai models can be "
                    "subjects",
                )

    def level(self, where: Path_, factor: str, level: str) -> None:
        if factor not in self.levels:
            raise self.fail(where, f"unknown factor {factor!r} (factors: {', '.join(self.levels)})")
        if level not in self.levels[factor]:
            known = ", ".join(self.levels[factor])
            raise self.fail(
                where, f"unknown level {level!r} of factor {factor!r} (levels: {known})"
            )

    def probes(self) -> None:
        _check_probes(self)

    def templates(self) -> None:
        t = self.p.materials.templates
        sources = {"system": t.system, "user": t.user}
        for name, source in sources.items():
            where = ("materials", "templates", name)
            if (err := check_syntax(source)) is not None:
                line = template_line(self.lines, where, err.lineno or 1)
                raise self.fail(where, f"template syntax error: {err.message}", line)
            for factor, level in level_references(source, self.levels):
                if level not in self.levels[factor]:
                    known = ", ".join(self.levels[factor])
                    raise self.fail(
                        where,
                        f"template compares {factor} with {level!r}, which is not one of its "
                        f"levels ({known})",
                    )
        m = self.p.materials
        plant = m.plants[0] if m.plants else None
        # every task in every cell: a task's fields, like a cell's levels, can break a template
        # (the evaluators' view is check_blinding's: it says when a blinded level is missing)
        for cell, task in itertools.product(cells(self.p), m.tasks):
            ctx = template_context(self.p, cell, 0, task, plant, blind=False)
            for name, source in sources.items():
                self.render(("materials", "templates", name), source, ctx, task)

    def render(self, where: Path_, source: str, ctx: dict[str, object], task: Task) -> None:
        try:
            render(source, ctx)
        except SecurityError as e:
            raise self.fail(where, f"template refused by sandbox: {e}") from None
        except UndefinedError as e:
            raise self.fail(
                where,
                f"undefined template variable: {e.message} with task {task.id!r} (available: "
                f"{', '.join(sorted(ctx))}; its fields: {', '.join(task.fields) or 'none'}); give "
                "every task the fields the templates use, or guard one with "
                "{% if fields.<name> is defined %}",
            ) from None
        except TemplateError as e:
            raise self.fail(where, f"template error: {e}") from None


TRAINED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,40}$")


def _check_probes(check: _Checker) -> None:
    spec = check.p.probes
    if spec is None:
        return
    where = ("probes",)
    for i, name in enumerate(spec.run):
        if name in TRAINED and not spec.train:
            raise check.fail(
                where + ("run", i),
                f"{name!r} applies trained probes: name at least one under probes.train",
            )
    for name in TRAINED:
        if name in spec.params:
            raise check.fail(
                where + ("params", name),
                f"{name} takes its probes from probes.train; give no params for it",
            )
    for name, trained in spec.train.items():
        if not TRAINED_NAME.match(name):
            raise check.fail(
                where + ("train", name),
                f"probe name {name!r}: use up to 41 letters, digits, '_' and '-'",
            )
        for field in ("dataset", "control"):
            rel = getattr(trained, field)
            if rel is None:
                continue
            problem = data_file_problem(check.path, rel)
            if problem is not None:
                raise check.fail(where + ("train", name, field), problem)


def data_file_problem(protocol_path: Path, rel: str) -> str | None:
    """Why `rel` cannot be a data file of the protocol at `protocol_path`, or None."""
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or "\\" in rel:
        return f"{rel!r} must be a relative path inside the protocol's folder (no '..')"
    full = protocol_path.parent / p
    if not full.is_file():
        return f"no file {rel!r} next to the protocol (looked for {full})"
    return None
