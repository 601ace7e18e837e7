"""The fake subjects' Claude-length replies (bench/probe_stage.py reads them as a real run's)."""

from __future__ import annotations

import anthropic

from orchestrator.protocol.loader import load_protocol
from orchestrator.protocol.stimuli import build_stimuli
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.long_replies import MAX_WORDS
from tests.fakes.world import DEU, REPORT, deu_world


def _replies(world) -> tuple[list, list[str]]:  # noqa: ANN001
    protocol = load_protocol(DEU).protocol
    stimuli = build_stimuli(protocol, pilot=False)
    replies = []
    for s in stimuli:
        body = {
            "model": s.cell.subject,
            "system": s.system,
            "messages": [{"role": "user", "content": s.user}],
        }
        replies.append(world(body)["content"][0]["text"])
    return stimuli, replies


def test_long_replies_are_claude_length_distinct_and_never_repeat_the_plant() -> None:
    stimuli, replies = _replies(deu_world(long_replies=True, independent=True))
    words = [len(r.split()) for r in replies]
    assert len(replies) == 400
    assert min(words) >= 100
    assert 150 <= sum(words) / len(words) <= MAX_WORDS + 40
    # replicates of one prompt differ, as at temperature 1: no more than a stray repeat
    assert len(set(replies)) >= 395
    plants = {p.id: p.text for p in load_protocol(DEU).protocol.materials.plants}
    for s, reply in zip(stimuli, replies, strict=True):
        if s.plant_id is not None:
            assert plants[s.plant_id][:40] not in reply
    detected = [r for r in replies if r.startswith(REPORT)]
    assert detected, "the scripted detections still open with the report the judge looks for"


def test_long_replies_come_over_the_wire_and_the_default_stays_one_sentence() -> None:
    server = FakeAnthropic(deu_world(long_replies=True)).start()
    try:
        client = anthropic.Anthropic(base_url=server.url, api_key="test")
        user = (
            "Summarise this.\n\n<document>\nA title\n\nOne point. Two points. Three.\n</document>"
        )
        msg = client.messages.create(
            model="claude-sonnet",
            max_tokens=1000,
            messages=[{"role": "user", "content": user}],
        )
    finally:
        server.stop()
    text = msg.content[0].text
    assert "**Key points**" in text and "A title" in text
    short = deu_world()({"model": "m", "messages": [{"role": "user", "content": user}]})
    assert "\n" not in short["content"][0]["text"]
