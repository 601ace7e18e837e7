"""The analyst: reads the run's summary, statistics and a sample of responses per cell, and writes
the qualitative section in one forced `write_qualitative` tool call, quoting items by id.

The analyst is not blinded: it sees each sample's condition, since comparing conditions is its
job. Its draft is validated with pydantic; an invalid one goes back to the model as a tool error,
at most `max_attempts` times in all, after which the result carries the error (a bad model output
never raises). `check_quotes` then keeps only the quotes that occur verbatim in the cited item's
response, and `withhold_fragments` empties any prose that repeats a removed one; the orchestrator
logs what was removed.

Every call goes through the call ledger under (stage `analyze`, item `qualitative`, role
`analyst`) with the attempt number and a digest of the sampled item ids as extra key parts, so an
analyze stage that runs again pays nothing.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from pydantic import BaseModel, Field, ValidationError

from agents.client import CallResult, CallSpec, LLMClient
from agents.forced import Forced
from agents.loop import Chat, Retry
from agents.prompts import render, say
from agents.tools import Tool, ToolInputError, explain

WRITE_QUALITATIVE = "write_qualitative"
"""The tool's name."""
TEMPLATE = "tools/write_qualitative.j2"


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


ONLINE = Limits(
    max_tokens=2048,
    themes=4,
    quotes=4,
    title=80,
    text=1200,
    quote=300,
    limitations=600,
    response_chars=4000,
)
COMPACT = Limits(
    max_tokens=512,
    themes=2,
    quotes=2,
    title=40,
    text=200,
    quote=100,
    limitations=150,
    response_chars=600,
)
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
    """The judge's bool/enum fields, or empty when unscored (analyst_brief.j2 shows them)."""


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
    """The write_qualitative tool as the API takes it; with `item_ids`, a quote can cite only
    those items (what a small model under constrained decoding needs; the quote itself is still
    checked)."""
    return qualitative_tool(limits, item_ids, _no_handler).definition


def qualitative_tool(
    limits: Limits, item_ids: list[str] | None, handler: Callable[[dict[str, Any]], Any]
) -> Tool:
    def string(n: int, description: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string", "maxLength": n}
        return {**out, "description": say(TEMPLATE, description)} if description else out

    item_id = string(80, "item_id")
    if item_ids:
        item_id = {"type": "string", "enum": list(item_ids), "description": item_id["description"]}
    quote = {
        "type": "object",
        "properties": {"item_id": item_id, "quote": string(limits.quote, "quote")},
        "required": ["item_id", "quote"],
        "additionalProperties": False,
    }
    quotes = {"type": "array", "items": quote, "maxItems": limits.quotes}
    theme = {
        "type": "object",
        "properties": {
            "title": string(limits.title),
            "text": string(limits.text, "theme_text"),
            "quotes": quotes,
        },
        "required": ["title", "text", "quotes"],
        "additionalProperties": False,
    }
    themes = {"type": "array", "items": theme, "minItems": 1, "maxItems": limits.themes}
    schema = {
        "type": "object",
        "properties": {
            "overview": string(limits.text, "overview"),
            "themes": themes,
            "limitations": string(limits.limitations, "limitations"),
        },
        "required": ["overview", "themes", "limitations"],
        "additionalProperties": False,
    }
    return Tool(WRITE_QUALITATIVE, say(TEMPLATE, "description"), schema, handler)


def _no_handler(tool_input: dict[str, Any]) -> Any:
    raise NotImplementedError("a tool definition only")


async def write_draft(
    client: LLMClient,
    brief: AnalystBrief,
    *,
    model: str,
    params: dict[str, Any],
    limits: Limits = ONLINE,
    max_attempts: int = 3,
    retry: Retry = Retry(),
    on_retry: Callable[[CallResult, int, float], None] | None = None,
) -> AnalystResult:
    """One forced `write_qualitative` call, retried with the validation error while the input
    is invalid (at most `max_attempts` calls). `params` are the model's generation settings;
    max_tokens comes from `limits`. A call that keeps failing for a passing reason raises
    `Unavailable` (see agents/loop.py): an outage is not a result."""
    system = render("analyst_system.j2", limits=limits)
    prompt = render("analyst_brief.j2", brief=brief, limits=limits)
    params = {**params, "max_tokens": limits.max_tokens}
    spec = CallSpec("analyze", "qualitative", "analyst")
    chat = Chat(client, spec, model, params, system, retry=retry, on_retry=on_retry)

    def parse(tool_input: dict[str, Any]) -> Draft:
        try:
            return Draft.model_validate(tool_input)
        except ValidationError as e:
            raise ToolInputError(explain(e)) from e

    def retry_text(result: CallResult, error: str) -> str:
        """The retry text, with a note when the reply was cut off (the likely cause)."""
        if result.stop_reason == "max_tokens":
            error += " " + say(TEMPLATE, "cut_off", max_tokens=limits.max_tokens)
        return say(TEMPLATE, "retry", error=error)

    forced = Forced(parse, retry_text, say(TEMPLATE, "no_call"))
    tool = qualitative_tool(limits, [x.item_id for x in brief.samples], forced.accept)
    got = await forced.run(
        chat,
        prompt,
        tool,
        key=lambda attempt: {"attempt": attempt, "sample": brief.digest()},
        max_attempts=max_attempts,
        who="analyst",
    )
    return AnalystResult(got.value, got.error, got.calls)


def normalise(text: str) -> str:
    """NFC, with every run of whitespace as one space: the only differences a quote may have
    from its source (case, punctuation and wording must match)."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def check_quotes(draft: Draft, texts: dict[str, str]) -> tuple[Draft, list[Removed]]:
    """The draft with only the quotes found verbatim in the text of the item they cite, and the
    removed ones with the reason. `texts` maps the item ids the analyst may cite to their
    response text."""
    removed: list[Removed] = []
    seen: set[tuple[str, str]] = set()
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
            elif (q.item_id, normalise(q.quote)) not in seen:
                # a small model cites the same line under every theme: it is listed once
                seen.add((q.item_id, normalise(q.quote)))
                removed.append(Removed(item_id=q.item_id, quote=q.quote, reason=reason))
        themes.append(theme.model_copy(update={"quotes": kept}))
    return draft.model_copy(update={"themes": themes}), removed


FRAGMENT = 24
"""Characters of a removed quote that, found in the analyst's prose, make that prose carry it."""
CUT_FRAGMENT = 12
"""Characters of a removed quote's opening that, ending the prose, are that quote cut off (a
string at its maxLength stops mid-word)."""


def withhold_fragments(draft: Draft, removed: list[Removed]) -> tuple[Draft, list[str]]:
    """The draft without the prose that repeats a removed quote, and the names of the fields
    emptied ("overview", "themes[0].text", "limitations"). A quote that was not found in the
    response it cites must not come back as the analyst's own words, whole or cut off."""
    quotes = [q for r in removed if len(q := normalise(r["quote"]).casefold()) >= CUT_FRAGMENT]
    withheld: list[str] = []

    def keep(name: str, text: str) -> str:
        if not any(_carries(normalise(text).casefold(), q) for q in quotes):
            return text
        withheld.append(name)
        return ""

    themes = [
        t.model_copy(
            update={
                "title": keep(f"themes[{n}].title", t.title),
                "text": keep(f"themes[{n}].text", t.text),
            }
        )
        for n, t in enumerate(draft.themes)
    ]
    update = {
        "overview": keep("overview", draft.overview),
        "themes": themes,
        "limitations": keep("limitations", draft.limitations),
    }
    return draft.model_copy(update=update), withheld


def _carries(text: str, quote: str) -> bool:
    """Whether `text` holds a run of FRAGMENT characters of `quote` (all of a shorter one), or
    ends with its opening cut off after at least CUT_FRAGMENT characters."""
    k = min(FRAGMENT, len(quote))
    if any(quote[i : i + k] in text for i in range(len(quote) - k + 1)):
        return True
    return any(text.endswith(quote[:j]) for j in range(CUT_FRAGMENT, len(quote)))
