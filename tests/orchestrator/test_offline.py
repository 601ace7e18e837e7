"""`research run --offline`: the run starts the real local worker (a tiny random model), talks to it
through the same anthropic SDK client, accounts for every item, and stops the worker at the end.
"""

from __future__ import annotations

import json
import random
import socket
from pathlib import Path

import httpx
import pytest

from orchestrator.nodes.conversation import EMPTY_TURN, item_responses
from orchestrator.records import Records
from tests.conftest import DEU, DEU_TOOLS, SYCOPHANCY, research
from tests.fakes.tiny_model import build_tiny_model

EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A free port for the worker the run starts, below the kernel's ephemeral range when it can:
    the worker binds it only after loading torch (seconds, more on a loaded machine), and in
    between an outgoing connection or another test's `bind(0)` could take a port from that range."""
    first = int(EPHEMERAL.read_text().split()[0]) if EPHEMERAL.exists() else 0
    candidates = random.sample(range(20000, first), 50) if first > 21000 else []
    for port in [*candidates, 0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:  # in use: try the next
                continue
            return s.getsockname()[1]
    raise AssertionError("no free port")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny", context_length=8192)


@pytest.mark.parametrize(
    ("protocol", "turns"),
    [(DEU, 1), (DEU_TOOLS, 1), (SYCOPHANCY, 2)],
    ids=["deu", "deu_tools", "sycophancy"],
)
def test_offline_pilot_runs_on_the_local_worker(
    protocol: Path, turns: int, tiny: Path, tmp_path: Path
) -> None:
    """Each shipped shape on the local worker: one document, a tool call and its result, a
    conversation with a generated turn (`turns` subject calls per item)."""
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "RESEARCH_RUNS_DIR": str(tmp_path / "runs"),
        "RESEARCH_LOCAL_MODEL": str(tiny),
        "RESEARCH_WORKER_URL": f"http://127.0.0.1:{port}",
        "RESEARCH_CACHE_DIR": str(tmp_path / "cache"),
    }  # no ANTHROPIC_API_KEY: offline needs none
    # a random model rarely writes valid verdicts, so most items end unscored: above
    # evaluation.max_unscored, which stops --yes at evaluate unless the flags are accepted
    r = research(
        "run",
        str(protocol),
        "--pilot",
        "--offline",
        "--yes",
        "--accept-flags",
        "--run-id",
        "off",
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = tmp_path / "runs" / "off"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["offline"] and manifest["local_model"] == str(tiny)
    assert manifest["models"] == [f"local=local:{tiny}", f"judge=local:{tiny}"]
    rec = Records(run_dir / "records.sqlite")
    items = {i.id for i in rec.items()}
    assert len(items) == 12  # one local subject × (2 × 2 × 3, or 3 × 2 × 2)
    # every call was answered; a sampled turn the random model left empty stops its conversation
    # there (the item is kept, unscored, with that reason), so it has no judged reply
    assert not rec._all("SELECT item FROM calls WHERE stage='collect' AND error IS NOT NULL")
    answered = item_responses(rec, rec.items())
    assert set(answered) == items
    stopped = {i for i, r in answered.items() if r.error is not None}
    assert all(answered[i].error.startswith(f"{EMPTY_TURN} 1:") for i in stopped), answered
    assert set(rec.responses()) == items - stopped
    calls = rec._all("SELECT role FROM calls WHERE stage='collect'")
    assert len(calls) == turns * 12 - (turns - 1) * len(stopped)
    verdicts = rec.verdicts()
    assert {v.item_id for v in verdicts} == items
    # a random model rarely writes valid verdicts: those items are unscored, with a reason
    assert all(v.status == "scored" or v.reason for v in verdicts)
    assert rec.usage()["collect"]["cost_usd"] == 0.0
    # the judges mark their shared system prompt and their conversation so far for the worker's
    # prompt cache (the tiny model's context is too short for their prompts to be served here)
    sent = [
        json.loads(r["request"])
        for r in rec._all("SELECT request FROM calls WHERE stage='evaluate'")
    ]
    assert sent and all(r["system"][0]["cache_control"] == {"type": "ephemeral"} for r in sent)
    assert all(r["messages"][-1]["content"][-1]["cache_control"] for r in sent)
    # the report says what it is before anything else: a smoke test, not a result
    report = (run_dir / "report.md").read_text()
    head = report.split("\n1. [", 1)[0]
    assert "> **⚠ Offline smoke test: not a result.** Made with the offline model " in head
    assert "(offline smoke test, pilot)" in head
    html = (run_dir / "report.html").read_text().split('<div class="meta">', 1)[0]
    assert '<div class="banner offline" role="alert">' in html
    if protocol != SYCOPHANCY:  # H3 compares two subjects; offline there is one, and it says so
        assert "needs two subjects; this run has 1" in report
    log = (run_dir / "LOG.md").read_text()
    assert "Started the local worker" in log
    if "\nprobes:" in protocol.read_text():
        # the worker it started cached probe results and trained probes under RESEARCH_CACHE_DIR
        assert (tmp_path / "cache" / "probe-cache.sqlite").exists()
        assert any((tmp_path / "cache" / "probes").iterdir())
    with pytest.raises(httpx.HTTPError):  # the run stopped the worker it started
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
