"""`provider: openai` subjects: a mixed-provider DEU pilot against both fakes (faults on each), and
what validate and the credential check refuse before any call is made."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import runner
from orchestrator.errors import ProtocolError, UserError
from orchestrator.protocol.loader import load_protocol_text
from orchestrator.records import Records
from orchestrator.settings import Settings
from tests.conftest import API_KEY, DEU, without_probes
from tests.fakes.anthropic_server import FakeAnthropic, random_faults
from tests.fakes.openai_server import FakeOpenAI, messages_handler
from tests.fakes.world import deu_world

HAIKU = """  - id: claude-haiku
    provider: anthropic
    model: claude-haiku-4-5
"""
GPT = """  - id: gpt-4o
    provider: openai
    model: gpt-4o
"""


def with_openai_subject(text: str) -> str:
    """deu.yaml with its second subject on OpenAI (the endpoint from OPENAI_BASE_URL)."""
    assert text.count(HAIKU) == 1
    return text.replace(HAIKU, GPT)


@pytest.fixture
def openai_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """The DEU world's subjects behind a fake OpenAI endpoint, named by the environment."""
    with FakeOpenAI(messages_handler(deu_world())) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        yield server


def test_a_pilot_with_an_openai_subject_under_faults_answers_every_item_once(
    env: dict,
    runs: Path,
    world: FakeAnthropic,
    openai_world: FakeOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    protocol = tmp_path / "deu.yaml"
    protocol.write_text(with_openai_subject(without_probes(DEU.read_text())))
    # two SDK retries: some calls exhaust them, so collect's follow-up passes are exercised
    monkeypatch.setenv("RESEARCH_MAX_RETRIES", "2")
    world.faults = random_faults(0.3, seed=3, slow_s=0.3)
    openai_world.faults = random_faults(0.3, seed=4, slow_s=0.3)

    out = runner.start(protocol, pilot=True, yes=True, run_id="mixed")
    if out.status != "complete":  # a judge outage past every try: resume finishes it
        out = runner.resume("mixed", yes=True)
    assert out.status == "complete"

    rec = Records(runs / "mixed" / "records.sqlite")
    try:
        responses = rec.responses()
    finally:
        rec.close()
    assert len(responses) == 24 and all(r.error is None for r in responses.values())
    by_subject = Counter(item.split(".")[0] for item in responses)
    assert by_subject == {"claude-sonnet": 12, "gpt-4o": 12}

    answered_gpt = Counter(s.fingerprint for s in openai_world.answered())
    assert len(answered_gpt) == 12 and set(answered_gpt.values()) == {1}  # none paid twice
    subject_calls = [
        s for s in world.answered() if not s.body.get("tools") and "messages" in s.body
    ]
    answered_claude = Counter(
        s.fingerprint for s in subject_calls if s.body["model"] == "claude-sonnet-4-6"
    )
    assert len(answered_claude) == 12 and set(answered_claude.values()) == {1}
    faulted = [s.outcome for s in openai_world.requests if s.outcome.startswith("fault")]
    assert faulted  # the openai subject met faults, and they were retried

    with sqlite3.connect(runs / "mixed" / "records.sqlite") as db:
        rows = db.execute(
            "SELECT model, COUNT(*), MIN(cost_usd), SUM(attempts) FROM calls "
            "WHERE stage='collect' AND error IS NULL GROUP BY model"
        ).fetchall()
    costs = {model: (n, low, attempts) for model, n, low, attempts in rows}
    assert set(costs) == {"claude-sonnet-4-6", "gpt-4o"}
    for model, (n, low, _) in costs.items():
        assert n == 12 and low is not None and low > 0, model  # priced per provider
    gpt_posts = len(openai_world.requests)
    with sqlite3.connect(runs / "mixed" / "records.sqlite") as db:
        [(gpt_attempts,)] = db.execute(
            "SELECT SUM(attempts) FROM calls WHERE model='gpt-4o'"
        ).fetchall()
    assert gpt_attempts == gpt_posts  # every request the SDK made, retries included


def load(text: str):
    return load_protocol_text(text, DEU)  # beside its data files


def test_validate_refuses_batch_for_an_openai_subject() -> None:
    text = with_openai_subject(DEU.read_text()).replace(GPT, GPT + "    batch: true\n")
    with pytest.raises(ProtocolError) as e:
        load(text)
    assert "subjects[1].batch" in str(e.value) and "remove `batch: true`" in str(e.value)


def test_validate_refuses_an_openai_judge() -> None:
    text = DEU.read_text()
    judge = re.search(r"evaluation:\n  judge:\n    provider: anthropic\n", text)
    assert judge is not None
    text = text.replace(judge.group(0), judge.group(0).replace("anthropic", "openai"))
    with pytest.raises(ProtocolError) as e:
        load(text)
    assert "evaluation.judge.provider" in str(e.value) and "tool use" in str(e.value)


def test_an_openai_subject_needs_its_key() -> None:
    protocol = load(with_openai_subject(DEU.read_text())).protocol
    anthropic_only = Settings.from_env({"ANTHROPIC_API_KEY": "k"})
    with pytest.raises(UserError, match="OPENAI_API_KEY is not set.*gpt-4o"):
        runner.check_credentials(protocol, anthropic_only)
    both = Settings.from_env({"ANTHROPIC_API_KEY": "k", "OPENAI_API_KEY": "o"})
    runner.check_credentials(protocol, both)
    assert "o" not in repr(both.openai_api_key)  # a SecretStr: stars in a repr
