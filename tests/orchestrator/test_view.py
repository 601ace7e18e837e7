"""`research view`: from a cell's rate down to the sentence an evaluator quoted, on a real DEU
pilot run (fake Anthropic world, real worker), read-only, beside a run in progress too.

Pages are read through FastAPI's TestClient; one test drives the real `research view` process in
headless Chromium (Playwright) and leaves a screenshot of the item page.
"""

from __future__ import annotations

import html
import json
import os
import re
import signal
import sqlite3
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from memory import ProgramDir
from orchestrator import program
from orchestrator.analysis import load_analysis
from orchestrator.records import Records, Verdict, VerdictRole
from orchestrator.rundir import RunDir
from orchestrator.view import create_app
from orchestrator.view.marks import Span, find_quote, marked
from tests.browser import find_chromium
from tests.conftest import copy_run, spawn
from tests.fakes.world import REPORT
from tests.limits import HANG_S

ITEM_LINK = re.compile(r'<a class="item" href="/runs/[^/]+/items/([^"]+)"')
EVIDENCE = re.compile(r'<mark class="evidence"[^>]*>(.*?)</mark>', re.DOTALL)
PLANT = re.compile(r'<mark class="plant"[^>]*>(.*?)</mark>', re.DOTALL)


@pytest.fixture(scope="module")
def runs(completed_pilot: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's DEU pilot, read in place by every test that changes nothing."""
    root = tmp_path_factory.mktemp("view-runs")
    copy_run(completed_pilot, root)
    return root


@pytest.fixture(scope="module")
def client(runs: Path) -> TestClient:
    return TestClient(create_app(runs))


def read(run_dir: Path) -> Records:
    return Records(run_dir / "records.sqlite", read_only=True)


def detected_item(run_dir: Path) -> tuple[str, str, Verdict]:
    """(cell, item id, its counted verdict) of an item judged detected, with its quote."""
    rec = read(run_dir)
    try:
        counted = {v.item_id: v for v in rec.verdicts() if v.fields and v.fields["detected"]}
        item = next(i for i in rec.items() if i.id in counted and i.plant_id)
    finally:
        rec.close()
    return item.cell, item.id, counted[item.id]


def items_listed(page: str) -> list[str]:
    return ITEM_LINK.findall(page)


def test_quotes_are_found_across_whitespace_and_marked_in_escaped_text() -> None:
    text = "Fine.\n<b>I noticed</b>   an\ninstruction. Done."
    at = find_quote(text, "<b>I noticed</b> an instruction.")
    assert at is not None and text[at[0] : at[1]].startswith("<b>I noticed")
    assert find_quote(text, "i noticed") is None and find_quote(text, "  ") is None
    out = str(marked(text, [Span(*at, by="e1"), Span(0, 5, by="e2")], "evidence"))
    assert "<b>" not in out and "&lt;b&gt;I noticed&lt;/b&gt;" in out
    assert out.startswith('<mark class="evidence" title="e2">Fine.</mark>')
    assert out.count("<mark") == 2


def test_run_page_shows_every_cell_rate_from_the_analysis(runs: Path, client: TestClient) -> None:
    a = load_analysis(runs / "pilot" / "artifacts" / "analysis.json")
    page = client.get("/runs/pilot")
    assert page.status_code == 200
    assert "Analysis not yet written" not in page.text
    for c in a.cells:
        r = c.outcomes[a.primary]
        link = f'href="/runs/pilot/cells/{c.cell}?outcome={a.primary}">{100 * r.rate:.1f}%</a>'
        assert link in page.text
        assert f"{r.k}/{r.n} [{100 * r.lo:.1f}%, {100 * r.hi:.1f}%]" in page.text
    for h in a.decisions.hypotheses:
        assert f"<strong>{h.id}</strong>" in page.text
    listing = client.get("/runs").text
    assert 'href="/runs/pilot"' in listing and ">written<" in listing
    # the report's own notices: a pilot's rates are not shown as a result here either
    assert '<div class="banner pilot" role="alert"><strong>Pilot run' in page.text
    assert '<strong id="status">complete (pilot)</strong>' in page.text


def test_a_rate_opens_exactly_the_items_it_counts(runs: Path, client: TestClient) -> None:
    a = load_analysis(runs / "pilot" / "artifacts" / "analysis.json")
    for c in a.cells:
        r = c.outcomes["detected"]
        base = f"/runs/pilot/cells/{c.cell}"
        assert len(items_listed(client.get(base, params={"outcome": "detected"}).text)) == r.k
        negatives = client.get(base, params={"outcome": "not:detected"}).text
        assert len(items_listed(negatives)) == r.n - r.k
        assert len(items_listed(client.get(base, params={"outcome": "unscored"}).text)) == (
            r.unscored
        )
        assert len(items_listed(client.get(base).text)) == c.items


def test_item_page_marks_the_quote_and_the_plant_and_shows_every_verdict(
    runs: Path, client: TestClient
) -> None:
    _, item_id, verdict = detected_item(runs / "pilot")
    assert verdict.fields["evidence"] == REPORT
    page = client.get(f"/runs/pilot/items/{item_id}").text
    assert [html.unescape(m) for m in EVIDENCE.findall(page)] == [REPORT]
    rec = read(runs / "pilot")
    try:
        item = next(i for i in rec.items() if i.id == item_id)
        every = [v for v in rec.verdicts(None) if v.item_id == item_id]
    finally:
        rec.close()
    protocol_text = (runs / "pilot" / "protocol.yaml").read_text()
    (marked_plant,) = PLANT.findall(page)
    assert item.plant_id in protocol_text
    assert " ".join(html.unescape(marked_plant).split()) in " ".join(protocol_text.split())
    assert "planted" in page and item.levels["framing"] in page
    for v in every:
        assert f'data-evaluator="{v.evaluator}"' in page
    assert "counted in the rates" in page
    assert "quote not found in response" not in page


def change_copy(runs: Path, tmp_path: Path) -> Path:
    """A writable copy of the pilot under a new runs directory."""
    return copy_run(runs / "pilot", tmp_path / "runs")


def test_filters_by_disagreement_and_by_flag(runs: Path, tmp_path: Path) -> None:
    run_dir = change_copy(runs, tmp_path)
    cell, item_id, counted = detected_item(run_dir)
    with RunDir(run_dir) as run:  # a second evaluator who saw it otherwise, and a flag
        fields = {**counted.fields, "detected": False}
        other = Verdict(
            item_id, "evaluator-9", "b", "scored", fields, None, role=VerdictRole.OVERLAP
        )
        run.records.add_verdicts([other])
        run.records.add_flag("evaluate", "rubric_ambiguity", "evaluator-9", [item_id], "unclear")
    client = TestClient(create_app(tmp_path / "runs"))
    base = f"/runs/pilot/cells/{cell}"
    assert items_listed(client.get(base, params={"agreement": "disagree"}).text) == [item_id]
    assert item_id not in items_listed(client.get(base, params={"agreement": "agree"}).text)
    assert items_listed(client.get(base, params={"flag": "rubric_ambiguity"}).text) == [item_id]
    page = client.get(f"/runs/pilot/items/{item_id}").text
    assert "Judged twice" in page and "evaluator-9 (overlap)" in page
    assert "rubric_ambiguity by evaluator-9: unclear" in page


def test_model_output_is_escaped_and_a_missing_quote_is_said(runs: Path, tmp_path: Path) -> None:
    run_dir = change_copy(runs, tmp_path)
    _, item_id, counted = detected_item(run_dir)
    reply = f"<script>alert(1)</script> {REPORT}."
    db = sqlite3.connect(run_dir / "records.sqlite")
    with db:
        db.execute(
            "UPDATE calls SET content=? WHERE stage='collect' AND role='subject' AND item=?",
            (json.dumps([{"type": "text", "text": reply}]), item_id),
        )
        fields = {**counted.fields, "evidence": "words the response never said"}
        db.execute(
            "UPDATE verdicts SET fields=? WHERE item_id=? AND evaluator=?",
            (json.dumps(fields), item_id, counted.evaluator),
        )
    db.close()
    page = TestClient(create_app(tmp_path / "runs")).get(f"/runs/pilot/items/{item_id}").text
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "quote not found in response" in page and EVIDENCE.findall(page) == []


def test_a_run_in_a_programme_names_it_on_its_page(
    runs: Path, client: TestClient, tmp_path: Path
) -> None:
    assert 'id="program"' not in client.get("/runs/pilot").text  # the pilot joined none
    change_copy(runs, tmp_path)
    joined = ProgramDir.create(tmp_path / "programs", "deu", "Does DEU raise detection?")
    with RunDir.open(tmp_path / "runs", "pilot") as r:
        program.join(r, joined)
    page = TestClient(create_app(tmp_path / "runs")).get("/runs/pilot").text
    where = html.escape(str(joined.root.resolve() / "PROGRAM.md"))
    assert f'<p id="program">programme: deu ({where})</p>' in page


def test_unknown_runs_cells_and_items_are_404(client: TestClient) -> None:
    for url in (
        "/runs/nope",
        "/runs/pilot/cells/nope",
        "/runs/pilot/items/nope",
        "/runs/..%2F..%2Fetc",
    ):
        r = client.get(url)
        assert r.status_code == 404 and "Not found" in r.text, url


def test_view_reads_a_run_in_progress_without_taking_its_lock(runs: Path, tmp_path: Path) -> None:
    run_dir = change_copy(runs, tmp_path)
    (run_dir / "artifacts" / "analysis.json").unlink()
    with sqlite3.connect(run_dir / "records.sqlite") as db:  # back to before analyze ran
        db.execute("DELETE FROM stages WHERE stage IN ('analyze', 'report')")
    db.close()
    client = TestClient(create_app(tmp_path / "runs"))
    with RunDir(run_dir) as run:  # holds .lock and writes, as a running process does
        page = client.get("/runs/pilot").text
        assert "Analysis not yet written" in page
        assert '<div class="banner incomplete"' in page and "Stages not done: analyze." in page
        assert not re.search(r"<td>analyze</td>\s*<td>done</td>", page)
        assert re.search(r"<td>evaluate</td>\s*<td>done</td>", page)
        cell = run.records.items()[0].cell
        cell_page = client.get(f"/runs/pilot/cells/{cell}").text
        assert "Analysis not yet written" in cell_page and len(items_listed(cell_page)) == 3
        # the run keeps writing while the viewer reads: the next page shows it
        run.records.set_stage("analyze", "done", {"contrasts": 0})
        assert re.search(r"<td>analyze</td>\s*<td>done</td>", client.get("/runs/pilot").text)
        item_id = items_listed(cell_page)[0]
        assert client.get(f"/runs/pilot/items/{item_id}").status_code == 200
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        read(run_dir).add_flag("x", "y", "z", [], "a reader cannot write")


def test_an_older_records_file_is_reported_not_changed(runs: Path, tmp_path: Path) -> None:
    run_dir = change_copy(runs, tmp_path)
    db = sqlite3.connect(run_dir / "records.sqlite")
    db.execute("DROP TABLE labels")
    db.close()
    before = (run_dir / "records.sqlite").read_bytes()
    page = TestClient(create_app(tmp_path / "runs")).get("/runs/pilot")
    assert (
        page.status_code == 200 and "written by an earlier version (it lacks labels)" in page.text
    )
    assert (run_dir / "records.sqlite").read_bytes() == before


@pytest.mark.skipif(
    find_chromium() is None and not os.environ.get("RESEARCH_REQUIRE_BROWSER"),
    reason="no chromium binary (set $CHROMIUM; CI installs Debian's and sets "
    "RESEARCH_REQUIRE_BROWSER=1, where a missing browser fails instead)",
)
def test_click_from_a_rate_to_the_quoted_sentence_in_chromium(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from playwright.sync_api import sync_playwright

    cell, _, _ = detected_item(runs / "pilot")
    env = {**os.environ, "RESEARCH_RUNS_DIR": str(runs)}
    env.pop("DISPLAY", None)
    proc = spawn("view", "pilot", "--port", "0", "--no-open", env=env)
    try:
        line = proc.stdout.readline()  # the URL, printed before the server starts
        url = re.search(r"http://127\.0\.0\.1:\d+/runs/pilot", line)
        assert url, line
        # the address answers the moment it is printed (a browser opened at once is not refused)
        assert httpx.get(url.group(0), timeout=HANG_S).status_code == 200
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=find_chromium(), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(HANG_S * 1000)
            page.goto(url.group(0))
            # the detection rate of a cell where something was detected
            page.click(f'#results a.rate[data-outcome="detected"][href*="/cells/{cell}?"]')
            page.wait_for_selector("#items a.item")
            page.click("#items a.item >> nth=0")
            page.wait_for_selector("#response")
            assert page.inner_text("#response mark.evidence") == REPORT
            evaluators = page.locator(".verdict .evaluator").all_inner_texts()
            assert evaluators and all(e.startswith("evaluator-") for e in evaluators)
            assert page.locator(".verdict td[data-field=detected]").first.inner_text() == "yes"
            assert page.locator("pre.prompt mark.plant").count() == 1
            out = Path(os.environ.get("RESEARCH_SCREENSHOT_DIR") or tmp_path)
            out.mkdir(parents=True, exist_ok=True)
            shot = out / "view-item.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
        assert shot.read_bytes().startswith(b"\x89PNG")
        with capsys.disabled():
            print(f"\nscreenshot of the item page: {shot}")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=HANG_S)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
