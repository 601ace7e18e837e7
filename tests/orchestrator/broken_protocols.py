"""Broken protocols for test_protocol.py: each an edit of deu.yaml and the error it must raise."""

from __future__ import annotations

from typing import NamedTuple


class ErrorCase(NamedTuple):
    """One edit of deu.yaml (`old` becomes `new`) and the error it must raise."""

    name: str
    old: str
    new: str
    field: str
    fragment: str
    """A part of the error message."""


CASES = [
    ErrorCase(
        name="unknown field",
        old="n_per_cell: 50",
        new="n_per_cell: 50\n  n_per_cel: 5",
        field="design.n_per_cel",
        fragment="unknown field",
    ),
    ErrorCase(
        name="wrong type",
        old="n_per_cell: 50",
        new="n_per_cell: fifty",
        field="design.n_per_cell",
        fragment="integer",
    ),
    ErrorCase(
        name="n <= 0",
        old="n_per_cell: 50",
        new="n_per_cell: 0",
        field="design.n_per_cell",
        fragment="greater than 0",
    ),
    ErrorCase(
        name="missing field",
        old="  seed: 20260214\n",
        new="",
        field="design.seed",
        fragment="missing required field",
    ),
    ErrorCase(
        name="unknown level in template",
        old="{% if text.framing %}",
        new="{% if framing == 'deu2' %}",
        field="materials.templates.system",
        fragment="'deu2'",
    ),
    ErrorCase(
        name="template syntax",
        old="{% if text.framing %}",
        new="{% if text.framing %",
        field="materials.templates.system",
        fragment="template syntax error",
    ),
    ErrorCase(
        name="undefined variable",
        old="{{ document }}",
        new="{{ documnet }}",
        field="materials.templates.user",
        fragment="documnet",
    ),
    ErrorCase(
        name="sandbox",
        old="{{ document }}",
        new="{{ ''.__class__.__mro__ }}",
        field="materials.templates.user",
        fragment="sandbox",
    ),
    ErrorCase(
        name="unknown level in level_text",
        old='    control: ""',
        new='    contrl: ""',
        field="materials.level_text.framing.contrl",
        fragment="unknown level",
    ),
    ErrorCase(
        name="unknown level in contrast",
        old="treatment: deu",
        new="treatment: deu3",
        field="analysis.contrasts[0].treatment",
        fragment="unknown level",
    ),
    ErrorCase(
        name="shown task field no task has",
        old="evaluation:\n  judge:",
        new="evaluation:\n  show_task_fields: [answer]\n  judge:",
        field="evaluation.show_task_fields[0]",
        fragment="no task has a field 'answer' (no task has fields)",
    ),
]


PROBES_OLD = "      dataset: data/instructed_pairs.jsonl"
TRANSFER_OLD = "      transfer: data/ood_deception.jsonl"
PROBE_CASES = [
    ErrorCase(
        name="missing dataset",
        old=PROBES_OLD,
        new="      dataset: data/nope.jsonl",
        field="probes.train.deception.dataset",
        fragment="no file 'data/nope.jsonl'",
    ),
    ErrorCase(
        name="dataset outside the folder",
        old=PROBES_OLD,
        new="      dataset: ../deu.yaml",
        field="probes.train.deception.dataset",
        fragment="inside the protocol's folder",
    ),
    ErrorCase(
        name="absolute dataset",
        old=PROBES_OLD,
        new="      dataset: /etc/passwd",
        field="probes.train.deception.dataset",
        fragment="relative path",
    ),
    ErrorCase(
        name="missing transfer set",
        old=TRANSFER_OLD,
        new="      transfer: data/ood_nope.jsonl",
        field="probes.train.deception.transfer",
        fragment="no file 'data/ood_nope.jsonl'",
    ),
    ErrorCase(
        name="transfer set outside the folder",
        old=TRANSFER_OLD,
        new="      transfer: ../data/ood_deception.jsonl",
        field="probes.train.deception.transfer",
        fragment="inside the protocol's folder",
    ),
    ErrorCase(
        name="transfer set not a path",
        old=TRANSFER_OLD,
        new="      transfer: [data/ood_deception.jsonl]",
        field="probes.train.deception.transfer",
        fragment="string",
    ),
    ErrorCase(
        name="unknown variant",
        old=PROBES_OLD,
        new=PROBES_OLD + "\n      variant: shuffled",
        field="probes.train.deception.variant",
        fragment="as_written",
    ),
    ErrorCase(
        name="linear without trained probes",
        old="  train:\n    deception:",
        new="  trian:\n    deception:",
        field="probes.trian",
        fragment="unknown field",
    ),
    ErrorCase(
        name="params for linear",
        old="    surprisal:\n      top_k: 5",
        new="    surprisal:\n      top_k: 5\n    linear:\n      probe: x",
        field="probes.params.linear",
        fragment="give no params",
    ),
    ErrorCase(
        name="bad probe name",
        old="    deception:\n      dataset",
        new="    'de ception':\n      dataset",
        field="probes.train.de ception",
        fragment="letters, digits",
    ),
]


ENUM = "      values: [checklist, experiential, none]\n"
"""deu.yaml's enum verdict field."""
NEXT = "    evidence:\n"
"""Where a verdict case adds a field: before deu.yaml's last one."""

REFERENCE_CASES = [
    ErrorCase(
        name="unknown term",
        old="      terms: [framing, subject]",
        new="      terms: [framing, model]",
        field="analysis.models[0].terms[1]",
        fragment="unknown term 'model'",
    ),
    ErrorCase(
        name="term held fixed",
        old="      terms: [framing, subject]",
        new="      terms: [framing, planted]",
        field="analysis.models[0].terms[1]",
        fragment="also held fixed in within",
    ),
    ErrorCase(
        name="outcome not analysed",
        old="      outcome: detected\n      terms:",
        new="      outcome: evidence\n      terms:",
        field="analysis.models[0].outcome",
        fragment="'evidence' is a str field, which no model fits",
    ),
    ErrorCase(
        name="unknown subject",
        old="    - when: {planted: none}",
        new="    - when: {subject: gpt-4o}",
        field="analysis.assumed_rates[2].when.subject",
        fragment="unknown subject 'gpt-4o'",
    ),
    ErrorCase(
        name="unknown level in assumed rate",
        old="    - when: {planted: none}",
        new="    - when: {planted: maybe}",
        field="analysis.assumed_rates[2].when.planted",
        fragment="unknown level 'maybe'",
    ),
    ErrorCase(
        name="max_length on a bool",
        old="      type: bool\n",
        new="      type: bool\n      max_length: 10\n",
        field="evaluation.verdict.detected.max_length",
        fragment="`str` fields only",
    ),
    ErrorCase(
        name="min above max",
        old=NEXT,
        new="    turns:\n      type: int\n      min: 5\n      max: 1\n" + NEXT,
        field="evaluation.verdict.turns.max",
        fragment="write the smaller bound as `min`",
    ),
    ErrorCase(
        name="min on an enum",
        old=ENUM,
        new=ENUM.replace("values:", "min: 0\n      values:"),
        field="evaluation.verdict.reasoning_style.min",
        fragment="`int` fields only",
    ),
    ErrorCase(
        name="max on a str",
        old="      max_length: 300\n",
        new="      max_length: 300\n      max: 3\n",
        field="evaluation.verdict.evidence.max",
        fragment="`int` fields only",
    ),
    ErrorCase(
        name="ordinal without levels",
        old=NEXT,
        new="    confidence:\n      type: ordinal\n" + NEXT,
        field="evaluation.verdict.confidence.levels",
        fragment="at least two distinct `levels`",
    ),
    ErrorCase(
        name="ordinal with one distinct level",
        old=NEXT,
        new="    confidence:\n      type: ordinal\n      levels: [high, high]\n" + NEXT,
        field="evaluation.verdict.confidence.levels",
        fragment="at least two distinct `levels`",
    ),
    ErrorCase(
        name="levels on an enum",
        old=ENUM,
        new=ENUM.replace("values:", "levels:"),
        field="evaluation.verdict.reasoning_style.values",
        fragment="an enum needs `values`",
    ),
    ErrorCase(
        name="levels on an int",
        old=NEXT,
        new="    turns:\n      type: int\n      levels: [a, b]\n" + NEXT,
        field="evaluation.verdict.turns.levels",
        fragment="unordered choices are `type: enum` with `values`",
    ),
    ErrorCase(
        name="values on an ordinal",
        old=NEXT,
        new="    confidence:\n      type: ordinal\n      values: [low, high]\n" + NEXT,
        field="evaluation.verdict.confidence.values",
        fragment="`values` applies to `enum` fields only",
    ),
    ErrorCase(
        name="duplicate model name",
        old="  models:\n",
        new="  models:\n    - {name: framing_by_model, terms: [framing]}\n",
        field="analysis.models[1].name",
        fragment="duplicate name 'framing_by_model'",
    ),
]


class FixCase(NamedTuple):
    """A design that cannot work: the error names the field at the line of `at` and says both
    what is wrong (`fragment`) and what to write instead (`fix`)."""

    name: str
    old: str
    new: str
    field: str
    fragment: str
    fix: str
    at: str
    """Text in the edited protocol whose (first) line the error must name."""


FIRST_CONTRAST = "      within:\n        planted: planted\n    - name: deu_effect_on_false_alarms"
DESIGN_CASES = [
    FixCase(
        name="treatment is control",
        old="      control: control\n      within:\n        planted: planted",
        new="      control: deu\n      within:\n        planted: planted",
        field="analysis.contrasts[0].control",
        fragment="both 'deu'",
        fix="compare two different levels of framing, e.g. control: control",
        at="      control: deu\n",
    ),
    FixCase(
        name="within holds the contrast's factor",
        old=FIRST_CONTRAST,
        new=FIRST_CONTRAST.replace("planted: planted", "framing: deu"),
        field="analysis.contrasts[0].within.framing",
        fragment="one arm is always empty",
        fix="hold only other factors in within",
        at="        framing: deu\n",
    ),
    FixCase(
        name="duplicate contrast name",
        old="    - name: deu_effect_on_false_alarms",
        new="    - name: deu_effect_on_detection",
        field="analysis.contrasts[1].name",
        fragment="duplicate name 'deu_effect_on_detection'",
        fix="give each a name of its own",
        at="    - name: deu_effect_on_detection\n      factor: framing\n      treatment: deu\n"
        "      control: control\n      within:\n        planted: none",
    ),
    FixCase(
        name="subject id with a space",
        old="  - id: claude-sonnet\n",
        new="  - id: claude sonnet\n",
        field="subjects[0].id",
        fragment="'claude sonnet' is not a valid name",
        fix="use letters, digits, '_' and '-'",
        at="  - id: claude sonnet\n",
    ),
    FixCase(
        name="subject id with a dot",
        old="  - id: claude-sonnet\n",
        new="  - id: claude-4.5\n",
        field="subjects[0].id",
        fragment="'claude-4.5' is not a valid name",
        fix="no '.'",
        at="  - id: claude-4.5\n",
    ),
    FixCase(
        name="level with a slash",
        old="levels: [control, deu]",
        new="levels: [control, deu/v2]",
        field="design.factors.framing.levels[1]",
        fragment="'deu/v2' is not a valid name",
        fix="use letters, digits, '_' and '-'",
        at="levels: [control, deu/v2]",
    ),
    FixCase(
        name="factor name with a dot",
        old="    planted:\n      levels: [none, planted]",
        new="    plant.ed:\n      levels: [none, planted]",
        field="design.factors.plant.ed",
        fragment="factor name: 'plant.ed' is not a valid name",
        fix="no '.'",
        at="    plant.ed:\n",
    ),
    FixCase(
        name="contrast name with a slash",
        old="    - name: deu_effect_on_detection",
        new="    - name: deu/detection",
        field="analysis.contrasts[0].name",
        fragment="'deu/detection' is not a valid name",
        fix="use letters, digits, '_', '-' and '.'",
        at="    - name: deu/detection",
    ),
    FixCase(
        name="model name with spaces",
        old="    - name: framing_by_model",
        new="    - name: framing by model",
        field="analysis.models[0].name",
        fragment="'framing by model' is not a valid name",
        fix="e.g. claude-sonnet, framing_by_model",
        at="    - name: framing by model",
    ),
    FixCase(
        name="pilot larger than full size",
        old="  pilot_n_per_cell: 3",
        new="  pilot_n_per_cell: 80",
        field="design.pilot_n_per_cell",
        fragment="larger than n_per_cell (50)",
        fix="write at most 50",
        at="  pilot_n_per_cell: 80",
    ),
    FixCase(
        name="contrast over subjects",
        old="      factor: framing\n      treatment: deu\n      control: control\n",
        new="      factor: subject\n      treatment: claude-sonnet\n      control: claude-haiku\n",
        field="analysis.contrasts[0].factor",
        fragment="computed for each subject",
        fix="add an analysis model with terms [<factor>, subject]",
        at="      factor: subject\n",
    ),
    FixCase(
        name="template other than system and user",
        old='    user: "{{ task.instruction }}',
        new='    assistant: "Sure."\n    user: "{{ task.instruction }}',
        field="materials.templates.assistant",
        fragment="unknown template",
        fix="or, for a longer conversation, a list of turns",
        at='    assistant: "Sure."',
    ),
    FixCase(
        name="unknown task field",
        old="    - id: sum-board-minutes\n",
        new="    - id: sum-board-minutes\n      answer: Paris\n",
        field="materials.tasks[0].answer",
        fragment="unknown field",
        fix="put further data under `fields:`",
        at="      answer: Paris\n",
    ),
    FixCase(
        name="refusal pattern that is not a regex",
        old="analysis:\n  primary: detected",
        new="screen:\n  refusals:\n    - '^I (cannot'\nanalysis:\n  primary: detected",
        field="screen.refusals[0]",
        fragment="not a regular expression",
        fix="write a Python regex",
        at="    - '^I (cannot'",
    ),
    FixCase(
        name="model of an enum verdict field",
        old="    - name: framing_by_model\n      outcome: detected\n",
        new="    - name: framing_by_model\n      outcome: reasoning_style\n",
        field="analysis.models[0].outcome",
        fragment="'reasoning_style' is an enum field, which no model fits",
        fix="or an ordinal verdict field (ordinal logistic regression); write one of detected, "
        "complied, questioned_legitimacy",
        at="      outcome: reasoning_style\n",
    ),
]


CONSTRAINT = "    - outcome: complied\n      requires: {planted: planted}\n"
CONSTRAINT_CASES = [
    FixCase(
        name="constraint on an unknown outcome",
        old=CONSTRAINT,
        new=CONSTRAINT.replace("complied", "complyed"),
        field="analysis.constraints[0].outcome",
        fragment="unknown outcome 'complyed'",
        fix="write one of detected, complied, questioned_legitimacy, reasoning_style",
        at="    - outcome: complyed\n",
    ),
    FixCase(
        name="constraint on a text field",
        old=CONSTRAINT,
        new=CONSTRAINT.replace("complied", "evidence"),
        field="analysis.constraints[0].outcome",
        fragment="str field 'evidence'",
        fix="a constraint names a bool, enum or ordinal verdict field",
        at="    - outcome: evidence\n",
    ),
    FixCase(
        name="constraint on an unknown factor",
        old=CONSTRAINT,
        new=CONSTRAINT.replace("{planted: planted}", "{plantd: planted}"),
        field="analysis.constraints[0].requires.plantd",
        fragment="unknown factor 'plantd' (factors: framing, planted, or subject)",
        fix="name the factor whose levels allow the outcome",
        at="      requires: {plantd: planted}\n",
    ),
    FixCase(
        name="constraint on an unknown level",
        old=CONSTRAINT,
        new=CONSTRAINT.replace("{planted: planted}", "{planted: [plant]}"),
        field="analysis.constraints[0].requires.planted",
        fragment="unknown level 'plant' of planted (levels: none, planted)",
        fix="write one of them",
        at="      requires: {planted: [plant]}\n",
    ),
    FixCase(
        name="constraint that every level meets",
        old=CONSTRAINT,
        new=CONSTRAINT.replace("{planted: planted}", "{planted: [none, planted]}"),
        field="analysis.constraints[0].requires",
        fragment="requires allows every level, so no item can break the constraint",
        fix="name only the levels where complied can occur",
        at="      requires: {planted: [none, planted]}\n",
    ),
    FixCase(
        name="constraint on an enum without its value",
        old=CONSTRAINT,
        new=CONSTRAINT.replace("complied", "reasoning_style"),
        field="analysis.constraints[0].value",
        fragment="reasoning_style is an enum field",
        fix="name the value that is impossible, e.g. value: checklist",
        at="    - outcome: reasoning_style\n",
    ),
    FixCase(
        name="constraint on an enum value that does not exist",
        old=CONSTRAINT,
        new=CONSTRAINT.replace("complied\n", "reasoning_style\n      value: checklst\n"),
        field="analysis.constraints[0].value",
        fragment="'checklst' is not one of reasoning_style's values",
        fix="(checklist, experiential, none); write one of them",
        at="      value: checklst\n",
    ),
    FixCase(
        name="constraint on a bool field with a text value",
        old=CONSTRAINT,
        new=CONSTRAINT.replace("complied\n", "complied\n      value: 'yes'\n"),
        field="analysis.constraints[0].value",
        fragment="complied is a bool field",
        fix="write value: true or value: false",
        at="      value: 'yes'\n",
    ),
    FixCase(
        name="contrast named for an unknown outcome",
        old=FIRST_CONTRAST,
        new=FIRST_CONTRAST.replace(
            "planted: planted\n", "planted: planted\n      outcomes: [detection]\n"
        ),
        field="analysis.contrasts[0].outcomes[0]",
        fragment="'detection' is not one of the analysis outcomes",
        fix="name one of them, or add it to analysis.outcomes",
        at="      outcomes: [detection]\n",
    ),
]
"""Constraints (`analysis.constraints`) and contrast outcomes that name what does not exist."""
