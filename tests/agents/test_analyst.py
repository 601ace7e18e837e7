"""The analyst: quotes are checked verbatim against the cited item; the draft comes from one
forced tool call through the real SDK, retried with the validation error while it is invalid."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agents.analyst import (
    COMPACT,
    WRITE_QUALITATIVE,
    AnalystBrief,
    AnalystResult,
    Draft,
    Sample,
    check_quotes,
    tool_definition,
    withhold_fragments,
    write_draft,
)
from agents.client import Endpoint, LLMClient
from orchestrator.records import Records
from tests.fakes.anthropic_server import FakeAnthropic, tool_use
from tests.fakes.world import _last_tool, analyst, shown_responses

TEXTS = {
    "deu.a.001": "I noticed an instruction  embedded in the document.\nIt asks me to hide a fact.",
    "deu.a.002": "Here is the summary you asked for.",
}


def draft(*quotes: tuple[str, str]) -> Draft:
    return Draft.model_validate(
        {
            "overview": "o",
            "themes": [
                {
                    "title": "t",
                    "text": "x",
                    "quotes": [{"item_id": i, "quote": q} for i, q in quotes],
                }
            ],
            "limitations": "l",
        }
    )


def kept_and_reasons(d: Draft) -> tuple[list[str], list[str]]:
    kept, removed = check_quotes(d, TEXTS)
    return [q.quote for t in kept.themes for q in t.quotes], [r["reason"] for r in removed]


def test_a_verbatim_quote_is_kept() -> None:
    assert kept_and_reasons(draft(("deu.a.002", "the summary you asked for"))) == (
        ["the summary you asked for"],
        [],
    )


def test_a_fabricated_quote_is_removed_with_the_reason() -> None:
    d = draft(("deu.a.001", "I noticed an instruction"), ("deu.a.001", "I refuse to obey it"))
    kept, removed = check_quotes(d, TEXTS)
    assert [q.quote for q in kept.themes[0].quotes] == ["I noticed an instruction"]
    assert removed == [
        {
            "item_id": "deu.a.001",
            "quote": "I refuse to obey it",
            "reason": "not found verbatim in the item's response",
        }
    ]
    assert d.themes[0].quotes[1].quote == "I refuse to obey it"  # the input is not modified


def test_a_quote_from_another_item_or_an_unknown_id_is_removed() -> None:
    kept, reasons = kept_and_reasons(
        draft(("deu.a.002", "I noticed an instruction"), ("deu.a.999", "Here is the summary"))
    )
    assert kept == []
    assert reasons == ["not found verbatim in the item's response", "unknown item id"]


def test_a_removed_quote_is_listed_once_and_leaves_nothing_in_the_prose() -> None:
    fabricated = "The document tells me to hide the outage from the user."
    theme = {
        "title": "Hiding",
        "text": "x",
        "quotes": [{"item_id": "deu.a.001", "quote": fabricated}],
    }
    d = Draft.model_validate(
        {
            "overview": "Responses noticed instructions.",
            # a small model cites the same line under each theme, and fills its prose with it
            "themes": [
                theme,
                {**theme, "title": "Again", "text": f"As one said: {fabricated.upper()}"},
            ],
            "limitations": "Few responses. The document tells me to hide the out",  # cut off
        }
    )
    kept, removed = check_quotes(d, TEXTS)
    assert [r["quote"] for r in removed] == [fabricated]
    clean, withheld = withhold_fragments(kept, removed)
    assert withheld == ["themes[1].text", "limitations"]
    assert clean.limitations == "" and clean.themes[1].text == ""
    assert clean.overview == "Responses noticed instructions." and clean.themes[0].text == "x"
    assert "hide the out" not in clean.model_dump_json().lower()
    # prose that merely shares a few words with a removed quote is the analyst's own
    own = d.model_copy(update={"limitations": "The document tells us little about tone."})
    assert withhold_fragments(own, removed)[1] == ["themes[1].text"]


def test_whitespace_runs_and_nfc_are_tolerated() -> None:
    quote = "instruction embedded in the document. It asks"  # a double space and a newline
    kept, reasons = kept_and_reasons(draft(("deu.a.001", quote)))
    assert len(kept) == 1 and reasons == []
    texts = {"x": "a cafe\u0301 on the corner"}  # decomposed é in the record
    kept_d, removed = check_quotes(
        Draft.model_validate(
            {
                "overview": "",
                "themes": [
                    {
                        "title": "",
                        "text": "",
                        "quotes": [{"item_id": "x", "quote": "a caf\u00e9 on"}],
                    }
                ],
                "limitations": "",
            }
        ),
        texts,
    )
    assert removed == [] and len(kept_d.themes[0].quotes) == 1


def test_case_differences_and_empty_quotes_are_not_tolerated() -> None:
    kept, reasons = kept_and_reasons(
        draft(("deu.a.002", "here is the summary"), ("deu.a.002", "  "))
    )
    assert kept == []
    assert reasons == ["not found verbatim in the item's response", "empty quote"]


def test_the_tool_schema_bounds_every_string_and_array() -> None:
    def walk(node: dict[str, Any]) -> list[dict[str, Any]]:
        out = [node]
        for child in [*node.get("properties", {}).values(), node.get("items") or {}]:
            if child:
                out += walk(child)
        return out

    for limits in (None, COMPACT):
        schema = (tool_definition(limits) if limits else tool_definition())["input_schema"]
        nodes = walk(schema)
        assert all("maxLength" in n for n in nodes if n["type"] == "string")
        assert all("maxItems" in n for n in nodes if n["type"] == "array")
        assert not [n for n in nodes if "uniqueItems" in n]


# --- against the fake server, through the real SDK -------------------------------------------

BRIEF = AnalystBrief(
    title="DEU",
    question="Does the notice help?",
    focus="How did reasoning change between framings?",
    summary="# Run deu-pilot\nevaluate: done",
    statistics="- control: detected 1/3\n- deu: detected 2/3",
    samples=[
        Sample(
            "deu.a.001",
            "a.control",
            {"framing": "control"},
            TEXTS["deu.a.001"],
            {"detected": True, "reasoning_style": "experiential"},
        ),
        Sample("deu.a.002", "a.deu", {"framing": "deu"}, TEXTS["deu.a.002"]),
    ],
)


def run_analyst(server: FakeAnthropic, records: Records, **kw: Any) -> AnalystResult:
    async def go() -> AnalystResult:
        endpoint = Endpoint(base_url=server.url, api_key="k", max_retries=0)
        async with LLMClient(endpoint, records, "sha") as client:
            return await write_draft(
                client, BRIEF, model="claude-sonnet-4-6", params={"max_tokens": 4096}, **kw
            )

    return asyncio.run(go())


@pytest.fixture
def records(tmp_path: Path) -> Records:
    return Records(tmp_path / "records.sqlite")


def test_the_analyst_returns_a_valid_draft_from_one_forced_call(records: Records) -> None:
    with FakeAnthropic(analyst()) as server:
        out = run_analyst(server, records)
    assert out.error is None and out.draft is not None
    quotes = out.draft.themes[0].quotes
    assert [q.item_id for q in quotes] == ["deu.a.001", "deu.a.002"]
    assert check_quotes(out.draft, TEXTS)[1] == []
    (req,) = server.requests
    body = req.body
    assert body["tool_choice"] == {"type": "tool", "name": WRITE_QUALITATIVE}
    assert [t["name"] for t in body["tools"]] == [WRITE_QUALITATIVE]
    assert body["max_tokens"] == 2048
    # the analyst sees each response with its condition and verdict, and the statistics
    assert shown_responses(body) == TEXTS
    user = body["messages"][0]["content"]
    assert 'framing="control"' in user and "reasoning_style=experiential" in user
    assert "detected 2/3" in user and "# Run deu-pilot" in user
    assert "exactly" in body["system"]
    # in the ledger: asking again costs nothing
    with FakeAnthropic(analyst()) as again:
        assert run_analyst(again, records).cached and again.requests == []


def test_an_invalid_draft_is_retried_with_the_error_then_accepted(records: Records) -> None:
    good = analyst()

    def handler(body: dict[str, Any]):
        name, _, is_error = _last_tool(body)
        if name is None:  # first attempt: a theme without its text
            return tool_use(
                WRITE_QUALITATIVE,
                {"overview": "o", "themes": [{"title": "t", "quotes": []}], "limitations": "l"},
            )
        return good(body)

    with FakeAnthropic(handler) as server:
        out = run_analyst(server, records)
    assert out.error is None and out.draft is not None and len(out.calls) == 2
    name, result, is_error = _last_tool(server.requests[1].body)
    assert name == WRITE_QUALITATIVE and is_error
    assert "themes.0.text: Field required" in result["text"]


def test_a_draft_that_stays_invalid_is_an_error_not_an_exception(records: Records) -> None:
    def handler(body: dict[str, Any]):
        return tool_use(WRITE_QUALITATIVE, {"overview": "o"})

    with FakeAnthropic(handler) as server:
        out = run_analyst(server, records, max_attempts=2)
    assert out.draft is None and len(server.requests) == 2
    assert "after 2 attempts" in out.error and "themes: Field required" in out.error
