"""The compact form's analysis: the contrasts the plan's hypotheses name, written by the code.

In the compact form the plan's hypotheses name contrasts that only the analysis stage defines,
from the factors' levels (`contrast_names`). The loader checks hypotheses once the analysis is
there, so a hand edit at the plan checkpoint that renames a level would only be refused three
stages later; `plan_problems` checks the edit at once against the analysis the form will write.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.design.compact_content import CompactAnalysis
from orchestrator.design.draft import Draft, problems
from orchestrator.errors import ProtocolError

Factors = list[tuple[str, list[str]]]
"""The approved plan's factors and their levels (a hand edit may have given one more levels)."""


def factors_of(so_far: Draft) -> Factors:
    factors = ((so_far.get("design") or {}).get("factors")) or {}
    return [(name, list((f or {}).get("levels") or [])) for name, f in factors.items()]


def planting(so_far: Draft) -> tuple[str, str] | None:
    """(factor, level) whose cells get a plant, once the materials are approved."""
    when = (so_far.get("materials") or {}).get("plant_when")
    return (when["factor"], when["level"]) if when else None


def contrast_names(factors: Factors) -> dict[tuple[str, str], str]:
    """The contrast of each treatment level against its factor's control, by (factor, level):
    `<level>_vs_<control>`, or `<factor>_<level>` where two factors' would read alike."""
    plain = {(f, lv): f"{lv}_vs_{levels[0]}" for f, levels in factors for lv in levels[1:]}
    seen = list(plain.values())
    return {(f, lv): n if seen.count(n) == 1 else f"{f}_{lv}" for (f, lv), n in plain.items()}


def closed_object(props: dict[str, Any], **more: Any) -> dict[str, Any]:
    """A JSON schema object with exactly these properties, all required."""
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
        **more,
    }


def analysis_schema(so_far: Draft) -> dict[str, Any]:
    rate = {"type": "number", "minimum": 0, "maximum": 1}
    treated = {
        f"{name}_{level}": rate for name, levels in factors_of(so_far) for level in levels[1:]
    }
    with_plant = ""
    if planted := planting(so_far):
        with_plant = f" and {planted[0]} at {planted[1]} (where there is a plant to follow)"
    return closed_object(
        {
            "baseline_rate": {
                **rate,
                "description": "Expected rate of the outcome when every factor is at control.",
            },
            "treated_rates": closed_object(
                treated,
                description="Expected rate with one factor at that level, the others at "
                f"control{with_plant}; keyed `<factor>_<level>`.",
            ),
            "focus": {
                "type": "string",
                "minLength": 1,
                "maxLength": 300,
                "description": "What a reader of the responses should look for beyond the "
                "numbers, e.g. how the model talks about what it noticed.",
            },
        }
    )


def analysis_sections(so_far: Draft, drafted: Draft, base: Draft) -> Draft:
    """Contrasts for every treatment level against the control (the names the hypotheses
    use); with a planting factor, the others' contrasts are taken where the plant is, since
    the outcome is about it; assumed rates for the forecast."""
    verdict = (so_far.get("evaluation") or {}).get("verdict") or {}
    outcome = next((k for k, v in verdict.items() if (v or {}).get("type") == "bool"), None)
    if outcome is None:
        raise ValueError("the plan has no bool outcome in evaluation.verdict")
    try:
        drafted = CompactAnalysis.model_validate(drafted).model_dump()
    except ValidationError as e:
        raise ValueError(str(e)) from None
    planted = planting(so_far)
    contrasts, rates = [], [{"rate": drafted["baseline_rate"]}]
    treated = drafted["treated_rates"]
    names = contrast_names(factors_of(so_far))
    for name, levels in factors_of(so_far):
        for level in levels[1:]:
            c: Draft = {
                "name": names[name, level],
                "factor": name,
                "treatment": level,
                "control": levels[0],
            }
            if planted and planted[0] != name:
                c["within"] = {planted[0]: planted[1]}
            contrasts.append(c)
            if f"{name}_{level}" in treated:  # the other factors' rates, where the plant is
                when = {name: level} | (dict([planted]) if planted else {})
                rates.append({"when": when, "rate": treated[f"{name}_{level}"]})
    analysis: Draft = {
        "primary": outcome,
        "contrasts": contrasts,
        "correction": (base.get("analysis") or {}).get("correction", "holm"),
        "assumed_rates": rates,
        "qualitative": {"focus": drafted["focus"]},
    }
    checkpoints = base.get("checkpoints", ["design", "evaluate", "report"])
    return {"analysis": analysis, "checkpoints": copy.deepcopy(checkpoints)}


STAND_IN_RATES: Draft = {"baseline_rate": 0.1, "treated_rates": {}, "focus": "stand-in"}
"""The analysis stage's content, when only its contrasts matter (checking a plan)."""


def plan_problems(plan: Draft, base: Draft, path: Path) -> list[ProtocolError]:
    """A plan's hypotheses checked by the loader against the analysis this form will write for
    its factors and outcome: what would be refused once the analysis is drafted, said at the
    plan (a hand edit that renamed a level, say)."""
    try:
        later = analysis_sections(plan, STAND_IN_RATES, base)
    except ValueError as e:
        text = f"{e}: the compact form needs one (`type: bool`), which the analysis counts"
        return [ProtocolError(text, file=path, field="evaluation.verdict")]
    return [e for e in problems(plan | later, path) if (e.field or "").startswith("hypotheses")]
