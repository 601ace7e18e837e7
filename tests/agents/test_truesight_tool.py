"""The truesight tool through a real tool-use flow: fake Anthropic model, real worker, records."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from agents.client import CallSpec, Endpoint, LLMClient
from agents.loop import Chat, tool_loop
from agents.truesight import TruesightClient, TruesightTool, truesight_tool
from orchestrator.records import Records
from tests.conftest import ROOT
from tests.fakes.anthropic_server import FakeAnthropic, text, tool_use
from tests.truesight.workers import Worker

RESPONSE = "I noticed an instruction in the document asking me to hide the deadline."


def scripted(asks: dict[str, Any]):
    """Ask for the tool once, then answer with what the tool returned."""

    def handler(body: dict[str, Any]):
        last = body["messages"][-1]["content"]
        if isinstance(last, str):
            return tool_use("truesight", asks)
        result = last[0]
        return text(("ERROR " if result.get("is_error") else "OK ") + result["content"])

    return handler


def run_loop(
    server: FakeAnthropic, worker: Worker, records: Records, trained: dict[str, str] | None = None
) -> Any:
    responses = {"R01": ("deu.item.001", RESPONSE)}
    tool = TruesightTool(TruesightClient(worker.url), records, responses, trained=trained)

    async def go():
        endpoint = Endpoint(base_url=server.url, api_key="k")
        async with LLMClient(endpoint, records, "sha") as client:
            spec = CallSpec("evaluate", "batch-01", "evaluator-1")
            chat = Chat(client, spec, "claude-sonnet-4-6", {"max_tokens": 200}, "judge")
            opening = [{"role": "user", "content": "Judge R01."}]
            return await tool_loop(chat, opening, [truesight_tool(tool, tool.offered)])

    return asyncio.run(go())


def test_truesight_tool_in_a_tool_use_flow(probe_worker: Worker, tmp_path: Path) -> None:
    records = Records(tmp_path / "records.sqlite")
    asks = {"response_id": "R01", "probes": ["surprisal", "author"]}
    with FakeAnthropic(scripted(asks)) as server:
        transcript = run_loop(server, probe_worker, records)
    final = transcript.final.text
    assert final.startswith("OK ")
    readout = json.loads(final[3:])
    rows = {r.id: r for r in records.probe_results()}
    for probe in ("surprisal", "author"):
        pid = readout[probe]["probe_result_id"]
        assert rows[pid].item_id == "deu.item.001" and rows[pid].probe == probe
    assert "mean_nll" in readout["surprisal"] and readout["model"] == rows[pid].model
    # the second model call carried the tool result back, in the Messages API shape
    second = server.requests[1].body["messages"]
    assert second[-1]["content"][0]["type"] == "tool_result"
    assert second[-2]["content"][0]["name"] == "truesight"


def test_a_bad_tool_call_goes_back_to_the_model(probe_worker: Worker, tmp_path: Path) -> None:
    records = Records(tmp_path / "records.sqlite")
    with FakeAnthropic(scripted({"response_id": "R99"})) as server:
        transcript = run_loop(server, probe_worker, records)
    assert transcript.final.text.startswith("ERROR ") and "R99" in transcript.final.text
    assert records.probe_results() == []


def test_the_runs_trained_probes_through_the_tool(probe_worker: Worker, tmp_path: Path) -> None:
    data = ROOT / "protocols" / "data" / "sincere_performative.jsonl"
    client = TruesightClient(probe_worker.url)
    reply = client.train("tool-performative", data.read_text(), source=str(data), layer=1)
    client.close()
    assert reply["probe"]["positive_label"] == "performative"
    records = Records(tmp_path / "records.sqlite")
    trained = {"performative": "tool-performative"}
    with FakeAnthropic(scripted({"response_id": "R01", "probes": ["linear"]})) as server:
        readout = json.loads(run_loop(server, probe_worker, records, trained).final.text[3:])
    row = {r.id: r for r in records.probe_results()}[
        readout["linear:performative"]["probe_result_id"]
    ]
    assert row.probe == "linear:performative" and row.result["probe"] == "tool-performative"
    assert row.source == "agent"  # never mixed into the probe stage's per-cell figures
    assert "linear" in offered_probes(server) and "trained linear probes" in described(server)
    fields = {"probe_result_id", "score", "probability", "above_threshold"}
    assert set(readout["linear:performative"]) == fields
    # without trained probes in the run, linear is not offered
    fresh = Records(tmp_path / "fresh.sqlite")  # (the ledger would replay the call above)
    with FakeAnthropic(scripted({"response_id": "R01", "probes": ["linear"]})) as server:
        final = run_loop(server, probe_worker, fresh).final.text
    assert final.startswith("ERROR ") and "this run offers" in final
    # ... nor advertised: the tool offers exactly what it can serve
    assert "linear" not in offered_probes(server) and "linear" not in described(server)


def offered_probes(server: FakeAnthropic) -> list[str]:
    [tool] = server.requests[0].body["tools"]
    return tool["input_schema"]["properties"]["probes"]["items"]["enum"]


def described(server: FakeAnthropic) -> str:
    return server.requests[0].body["tools"][0]["description"]
