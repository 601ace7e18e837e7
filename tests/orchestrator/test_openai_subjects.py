"""`provider: openai` subjects: a mixed-provider DEU pilot against both fakes (faults on each), the
same pilot killed with SIGKILL and resumed, and what validate and the credential check refuse
before any call is made."""

from __future__ import annotations

import json
import random
import re
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator import runner
from orchestrator.errors import ProtocolError, UserError
from orchestrator.protocol.loader import load_protocol_text
from orchestrator.records import Records
from orchestrator.settings import Settings
from tests.conftest import API_KEY, DEU, spawn, without_probes
from tests.fakes.anthropic_server import FakeAnthropic, random_faults
from tests.fakes.openai_server import FakeOpenAI, messages_handler
from tests.fakes.wire import Seen
from tests.fakes.world import deu_world
from tests.limits import HANG_S
from tests.orchestrator.test_crash import (
    Progress,
    api_key,
    assert_only_kills_cost_a_repeat,
    kill_at,
    stored_requests,
)

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


MAX_RETRIES = 2
"""The SDK's retries in the killed runs: a call makes at most three requests."""


@dataclass
class ProcessLedger:
    """What one process left in the ledger when it ended: each collect call's attempts (by
    key) and the calls it had started and not recorded (in flight at its kill)."""

    process: str
    """Its API key (on both fakes)."""
    killed: bool
    attempts: dict[str, int]
    in_flight: set[str]


def ledger_after(run_dir: Path, process: str, killed: bool) -> ProcessLedger:
    with closing(sqlite3.connect(run_dir / "records.sqlite")) as db:
        attempts = db.execute("SELECT key, attempts FROM calls WHERE stage='collect'").fetchall()
        # rows of earlier processes were marked orphaned when this one opened the run
        started = db.execute("SELECT key FROM started WHERE stage='collect' AND orphaned=0")
        in_flight = {key for (key,) in started.fetchall()}
    return ProcessLedger(process, killed, dict(attempts), in_flight)


def subject_requests(server: FakeAnthropic | FakeOpenAI) -> list[Seen]:
    """Every subject request a fake received (those without tools: the judges' and the
    analyst's have them). A request whose body never arrived (its process was killed between
    sending the headers and the body) was not one: the fake read `{}` and could answer nothing."""
    return [s for s in server.requests if "messages" in s.body and not s.body.get("tools")]


def assert_attempts_are_the_requests_sent(
    run_dir: Path, ledgers: list[ProcessLedger], requests: list[Seen]
) -> None:
    """A collect call's `attempts` counts the HTTP requests made for it, retries included —
    but only those of tries whose result reached the ledger. A kill cuts off the call in
    flight: its requests were sent (and may be paid) but never recorded, so across kills the
    ledger's SUM(attempts) falls short of what the fakes saw by exactly those requests, and
    the resumed run shows them as possibly paid instead. So, process by process: the requests
    it sent for a call are the attempts it added to that call's row, plus, in a killed
    process, at most one cut-off try (1 + MAX_RETRIES requests) of a call it had started."""
    with closing(sqlite3.connect(run_dir / "records.sqlite")) as db:
        rows = db.execute("SELECT key, request FROM calls WHERE stage='collect'").fetchall()
    keys = {json.dumps(json.loads(request), sort_keys=True): key for key, request in rows}
    sent = {p.process: Counter[str]() for p in ledgers}
    for seen in requests:
        sent[api_key(seen)][keys[seen.fingerprint]] += 1  # every request one of the ledger's
    before: dict[str, int] = {}
    cut_off = 0
    for p in ledgers:
        for key in keys.values():
            lost = sent[p.process][key] - (p.attempts.get(key, 0) - before.get(key, 0))
            assert lost == 0 or (p.killed and key in p.in_flight and 0 < lost <= 1 + MAX_RETRIES), (
                f"{p.process}: {sent[p.process][key]} requests for call {key[:12]}, "
                f"{p.attempts.get(key, 0) - before.get(key, 0)} attempts recorded"
            )
            cut_off += lost
        before = p.attempts
    assert sum(before.values()) == len(requests) - cut_off


def test_a_mixed_pilot_killed_under_faults_resumes_answering_every_item_once(
    env: dict,
    runs: Path,
    world: FakeAnthropic,
    openai_world: FakeOpenAI,
    tmp_path: Path,
) -> None:
    """The mixed pilot under faults on both fakes, SIGKILLed in collect and again in evaluate
    (unless a judge outage stopped it first), resumed until complete: each subject request
    answered once on each fake but for answers a kill cut off, every response recorded, usage
    priced per provider, and every request the fakes saw either in the ledger's attempts or
    cut off by a kill."""
    protocol = tmp_path / "deu.yaml"
    protocol.write_text(with_openai_subject(without_probes(DEU.read_text())))
    world.faults = random_faults(0.3, seed=3, slow_s=0.3)
    openai_world.faults = random_faults(0.3, seed=4, slow_s=0.3)
    env = {
        **env,
        "OPENAI_BASE_URL": openai_world.url,
        "RESEARCH_MAX_RETRIES": str(MAX_RETRIES),
    }
    rng = random.Random(20260412)
    # 24 subject calls, then 8 evaluators × 4 turns and the analyst's: one kill in each stage
    thresholds = [rng.randrange(4, 20), rng.randrange(28, 50)]
    progress = Progress(world, openai_world)
    run_dir = runs / "mixed"
    start = ["run", str(protocol), "--pilot", "--yes", "--run-id", "mixed"]
    resume = ["resume", "mixed", "--yes"]
    ledgers: list[ProcessLedger] = []
    stored_at_kill: dict[str, set[str]] = {}
    for n, threshold in enumerate(thresholds):
        key = f"{API_KEY}-process{n}"
        keys = {"ANTHROPIC_API_KEY": key, "OPENAI_API_KEY": key}
        args = resume if (run_dir / "manifest.json").exists() else start
        proc = spawn(*args, env={**env, **keys}, output=tmp_path / f"{key}.out")
        try:
            killed = kill_at(proc, progress, threshold, rng)
        finally:
            if proc.poll() is None:  # the test failed before its kill: leave nothing running
                proc.kill()
                proc.wait(timeout=HANG_S)
        if killed:
            stored_at_kill[key] = stored_requests(run_dir)
        ledgers.append(ledger_after(run_dir, key, killed))
    # the first kill comes while collect still has calls to make: the process cannot end before
    assert ledgers[0].killed
    for n in range(3):  # a judge outage past every try stops a run; the next resume finishes it
        key = f"{API_KEY}-final{n}"
        proc = spawn(*resume, env={**env, "ANTHROPIC_API_KEY": key, "OPENAI_API_KEY": key})
        _, err = proc.communicate(timeout=HANG_S)
        ledgers.append(ledger_after(run_dir, key, killed=False))
        if proc.returncode == 0:
            break
    assert proc.returncode == 0, err[-3000:]
    assert "**complete**" in (run_dir / "SUMMARY.md").read_text()

    rec = Records(run_dir / "records.sqlite")
    try:
        responses = rec.responses()
    finally:
        rec.close()
    assert len(responses) == 24 and all(r.error is None for r in responses.values())
    by_subject = Counter(item.split(".")[0] for item in responses)
    assert by_subject == {"claude-sonnet": 12, "gpt-4o": 12}

    anthropic_sent, openai_sent = subject_requests(world), subject_requests(openai_world)
    for sent in (anthropic_sent, openai_sent):
        answered: dict[str, list[Seen]] = defaultdict(list)
        for seen in sent:
            if seen.outcome == "ok":
                answered[seen.fingerprint].append(seen)
        assert len(answered) == 12
        assert_only_kills_cost_a_repeat(answered, stored_at_kill)

    with closing(sqlite3.connect(run_dir / "records.sqlite")) as db:
        rows = db.execute(
            "SELECT model, COUNT(*), MIN(cost_usd) FROM calls "
            "WHERE stage='collect' AND error IS NULL GROUP BY model"
        ).fetchall()
    assert {model: n for model, n, _ in rows} == {"claude-sonnet-4-6": 12, "gpt-4o": 12}
    assert all(low is not None and low > 0 for _, _, low in rows), rows  # priced per provider
    assert_attempts_are_the_requests_sent(run_dir, ledgers, anthropic_sent + openai_sent)
    with closing(sqlite3.connect(run_dir / "records.sqlite")) as db:
        orphaned = "SELECT COUNT(*) FROM started WHERE stage='collect' AND orphaned=1"
        [(possibly_paid,)] = db.execute(orphaned).fetchall()
    assert possibly_paid == sum(len(p.in_flight) for p in ledgers)  # the calls cut off


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
