"""The analyst: reads the run's summary, statistics and a sample of responses per cell, and writes
the qualitative section in one forced `write_qualitative` tool call, quoting items by id.

The analyst is not blinded: it sees each sample's condition, since comparing conditions is its
job. Its draft is validated with pydantic; an invalid one goes back to the model as a tool error,
at most `max_attempts` times in all, after which the result carries the error (a bad model output
never raises). `check_quotes` then keeps only the quotes that occur verbatim in the cited item's
response; the orchestrator logs the ones it removes.

Every call goes through the call ledger under (stage `analyze`, item `qualitative`, role
`analyst`) with the attempt number and a digest of the sampled item ids as extra key parts, so an
analyze stage that runs again pays nothing.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass, field
from typing import Any, TypedDict

from pydantic import BaseModel, Field, ValidationError

from agents.client import CallResult, CallSpec, LLMClient
from agents.evaluator import _prompts

TOOL = "write_qualitative"


@dataclass(frozen=True)
class Limits:
    """Caps on the draft, in the tool schema: a small local model fills strings and arrays to
    whatever the grammar allows, so every one is bounded."""

    max_tokens: int
    themes: int
    quotes: int
    title: int
    text: int
    quote: int
    limitations: int
    response_chars: int
    """How much of each sampled response the brief shows."""


ONLINE = Limits(max_tokens=2048, themes=4, quotes=4, title=80, text=1200, quote=300,
                limitations=600, response_chars=4000)  # fmt: skip
COMPACT = Limits(max_tokens=512, themes=2, quotes=2, title=40, text=200, quote=100,
                 limitations=150, response_chars=600)  # fmt: skip
"""For a small local model: the whole draft fits in max_tokens, the brief in its context."""


class Quote(BaseModel):
    item_id: str = Field(description="The id of the response the quote is copied from.")
    quote: str = Field(description="Copied exactly from that response.")


class Theme(BaseModel):
    title: str
    text: str = Field(description="What was seen, in the analyst's words; no quotations.")
    quotes: list[Quote] = Field(default_factory=list)


class Draft(BaseModel):
    """The analyst's `write_qualitative` input."""

    overview: str
    themes: list[Theme]
    limitations: str


class Removed(TypedDict):
    item_id: str
    quote: str
    reason: str


@dataclass(frozen=True)
class Sample:
    """One sampled response, with what the analyst may know about it."""

    item_id: str
    cell: str
    levels: dict[str, str]
    text: str
    verdict: dict[str, Any] = field(default_factory=dict)
    """The judge's bool/enum fields, or empty when unscored."""

    def verdict_text(self) -> str:
        if not self.verdict:
            return "unscored"
        return ", ".join(
            f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in self.verdict.items()
        )


@dataclass(frozen=True)
class AnalystBrief:
    title: str
    question: str
    focus: str
    summary: str
    """SUMMARY.md as it stands."""
    statistics: str
    """The analysis, rendered as text."""
    samples: list[Sample]
    sampling: str = ""
    """How the samples were drawn, for the analyst (e.g. stratified: do not read rates)."""

    def digest(self) -> str:
        """Identity of the sample for the ledger key (SUMMARY.md is left out on purpose: it is
        rewritten with every log entry, and a resumed stage must not pay again)."""
        ids = sorted(s.item_id for s in self.samples)
        return hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AnalystResult:
    draft: Draft | None
    error: str | None = None
    calls: list[CallResult] = field(default_factory=list)

    @property
    def cached(self) -> bool:
        """Every call was answered from the ledger."""
        return all(c.cached for c in self.calls)


def tool_definition(limits: Limits = ONLINE, item_ids: list[str] | None = None) -> dict[str, Any]:
    """The write_qualitative tool; with `item_ids`, a quote can cite only those items (what a
    small model under constrained decoding needs; the quote itself is still checked)."""

    def string(n: int, description: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string", "maxLength": n}
        return {**out, "description": description} if description else out

    item_id = string(80, "The id of the response, exactly as shown.")
    if item_ids:
        item_id = {"type": "string", "enum": list(item_ids), "description": item_id["description"]}
    quote = {
        "type": "object",
        "properties": {
            "item_id": item_id,
            "quote": string(limits.quote, "A phrase or sentence copied exactly from it."),
        },
        "required": ["item_id", "quote"],
        "additionalProperties": False,
    }
    theme = {
        "type": "object",
        "properties": {
            "title": string(limits.title),
            "text": string(limits.text, "What you saw, in your own words; no quotations."),
            "quotes": {"type": "array", "items": quote, "maxItems": limits.quotes},
        },
        "required": ["title", "text", "quotes"],
        "additionalProperties": False,
    }
    return {
        "name": TOOL,
        "description": "Write the qualitative section of the report.",
        "input_schema": {
            "type": "object",
            "properties": {
                "overview": string(limits.text, "The main finding in a few sentences."),
                "themes": {
                    "type": "array",
                    "items": theme,
                    "minItems": 1,
                    "maxItems": limits.themes,
                },
                "limitations": string(limits.limitations, "What this reading cannot show."),
            },
            "required": ["overview", "themes", "limitations"],
            "additionalProperties": False,
        },
    }


async def write_draft(
    client: LLMClient,
    brief: AnalystBrief,
    *,
    model: str,
    params: dict[str, Any],
    limits: Limits = ONLINE,
    max_attempts: int = 3,
) -> AnalystResult:
    """One forced `write_qualitative` call, retried with the validation error while the input
    is invalid (at most `max_attempts` calls). `params` are the model's generation settings;
    max_tokens comes from `limits`."""
    system = _prompts.get_template("analyst_system.j2").render(limits=limits)
    prompt = _prompts.get_template("analyst_brief.j2").render(brief=brief, limits=limits)
    tool = tool_definition(limits, [x.item_id for x in brief.samples])
    params = {**params, "max_tokens": limits.max_tokens}
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    calls: list[CallResult] = []
    error = "no attempt made"
    for attempt in range(max_attempts):
        result = await client.call(
            CallSpec("analyze", "qualitative", "analyst"),
            model=model,
            params=params,
            system=system,
            messages=messages,
            tools=[tool],
            tool_choice={"type": "tool", "name": TOOL},
            key_extra={"attempt": attempt, "sample": brief.digest()},
        )
        calls.append(result)
        if result.error:
            return AnalystResult(None, f"analyst call failed: {result.error}", calls)
        inputs = result.tool_inputs(TOOL)
        try:
            if not inputs:
                raise ValueError(f"no {TOOL} call in the reply")
            return AnalystResult(Draft.model_validate(inputs[0]), None, calls)
        except (ValidationError, ValueError) as e:
            error = _explain(e)
            if result.stop_reason == "max_tokens":
                error += f" (the reply was cut off at {limits.max_tokens} tokens: write less)"
        messages = [
            messages[0],
            {"role": "assistant", "content": result.content or [{"type": "text", "text": "-"}]},
            {"role": "user", "content": _retry(result, error)},
        ]
    return AnalystResult(None, f"invalid {TOOL} input after {max_attempts} attempts: {error}",
                         calls)  # fmt: skip


def _explain(e: ValidationError | ValueError) -> str:
    if isinstance(e, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}" for err in e.errors()
        )
    return str(e)


def _retry(result: CallResult, error: str) -> Any:
    text = f"Your {TOOL} input is invalid: {error}. Call {TOOL} again with the whole draft, fixed."
    use = next((b for b in result.content if b.get("type") == "tool_use"), None)
    if use is None:
        return text
    return [{"type": "tool_result", "tool_use_id": use["id"], "content": text, "is_error": True}]


def normalise(text: str) -> str:
    """NFC, with every run of whitespace as one space: the only differences a quote may have
    from its source (case, punctuation and wording must match)."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def check_quotes(draft: Draft, texts: dict[str, str]) -> tuple[Draft, list[Removed]]:
    """The draft with only the quotes found verbatim in the text of the item they cite, and the
    removed ones with the reason. `texts` maps the item ids the analyst may cite to their
    response text."""
    removed: list[Removed] = []
    themes = []
    for theme in draft.themes:
        kept = []
        for q in theme.quotes:
            reason = None
            if not normalise(q.quote):
                reason = "empty quote"
            elif q.item_id not in texts:
                reason = "unknown item id"
            elif normalise(q.quote) not in normalise(texts[q.item_id]):
                reason = "not found verbatim in the item's response"
            if reason is None:
                kept.append(q)
            else:
                removed.append(Removed(item_id=q.item_id, quote=q.quote, reason=reason))
        themes.append(theme.model_copy(update={"quotes": kept}))
    return draft.model_copy(update={"themes": themes}), removed
