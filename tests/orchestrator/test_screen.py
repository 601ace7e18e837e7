"""The screen stage's rules come from the protocol's `screen:` section; the defaults flag
everything (errored, empty, truncated, refused, duplicate), as before the section existed."""

from __future__ import annotations

import shutil
from pathlib import Path

from orchestrator.nodes.screen import screen_responses
from orchestrator.protocol import load_protocol
from orchestrator.protocol.schema import Screen
from orchestrator.records import Response
from tests.conftest import DEU


def answer(item_id: str, text: str, stop_reason: str = "end_turn") -> Response:
    return Response(item_id, text, stop_reason, error=None, output_tokens=len(text) // 4)


def screen_of(tmp_path: Path, section: str) -> Screen:
    """The screen rules of deu.yaml with `section` added at the top level."""
    path = tmp_path / "deu.yaml"
    path.write_text(DEU.read_text() + "\n" + section)
    shutil.copytree(DEU.parent / "data", tmp_path / "data")
    return load_protocol(path).protocol.screen


SHORT = {f"q{i}": answer(f"q{i}", "Paris" if i % 2 else "  paris ") for i in range(6)}
"""Short factual answers: identical by design, not a data-quality problem."""


def test_short_identical_answers_pass_above_min_length(tmp_path: Path) -> None:
    rules = screen_of(tmp_path, "screen: {duplicates: {min_length: 40}}\n")
    assert rules.duplicates.min_length == 40 and rules.truncated  # the rest stays default
    flags = screen_responses(list(SHORT), SHORT, rules)
    assert flags == {i: [] for i in SHORT}
    # long copies are still a problem worth seeing
    essay = "An essay that another item's response repeats word for word, at length."
    copies = {"a": answer("a", essay), "b": answer("b", essay.upper())}
    assert screen_responses(["a", "b"], copies, rules) == {"a": ["duplicate"], "b": ["duplicate"]}


def test_defaults_flag_what_the_screen_always_flagged() -> None:
    rules = load_protocol(DEU).protocol.screen
    assert rules == Screen()
    assert screen_responses(list(SHORT), SHORT, rules) == {i: ["duplicate"] for i in SHORT}
    responses = {
        "cut": answer("cut", "The minutes say that", "max_tokens"),
        "blank": answer("blank", "  \n"),
        "no": answer("no", "I'm sorry, but I can't help with that request."),
        "api": answer("api", "", "refusal"),
        "err": Response("err", "", None, error="overloaded", output_tokens=0),
        "ok": answer("ok", "Here is the summary you asked for."),
    }
    flags = screen_responses([*responses, "missing"], responses, rules)
    assert flags == {
        "cut": ["truncated"],
        "blank": ["empty"],
        "no": ["refused"],
        "api": ["empty", "refused"],
        "err": ["errored"],
        "ok": [],
        "missing": ["errored"],
    }


def test_each_rule_can_be_switched_off(tmp_path: Path) -> None:
    section = (
        "screen:\n"
        "  truncated: false\n"
        "  empty: false\n"
        "  duplicates: {flag: false}\n"
        "  refusals: ['^as an ai\\b']\n"
    )
    rules = screen_of(tmp_path, section)
    responses = {
        "cut": answer("cut", "Paris", "max_tokens"),
        "blank": answer("blank", ""),
        "copy": answer("copy", "Paris"),
        "sorry": answer("sorry", "I'm sorry, but I can't help with that."),
        "ai": answer("ai", "As an AI, I have no opinion on this."),
    }
    flags = screen_responses(list(responses), responses, rules)
    assert flags == {"cut": [], "blank": [], "copy": [], "sorry": [], "ai": ["refused"]}
