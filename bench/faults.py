"""An API that keeps failing: what a full-size DEU run ends with, and what it took.

    .venv/bin/python bench/faults.py [--rates 0.3 0.5] [--retries 4] [--seed 11]

Each row is a full-size run (400 subject calls, 8 evaluators, the analyst; deu.yaml without its
probe stage) against the fake Anthropic world (tests/fakes/), through the real SDK, with a share
of every request faulted: 429s, 529s, 500s, dropped connections and slow answers in equal parts
(`random_faults`). Every checkpoint is approved with --yes; a run that stops (subject calls still
failing, or items pending at the evaluate checkpoint) is resumed, at most three times. The table
shows where the first process left the items, how many resumes it took until all 400 were
scored, and the requests and faults the fake saw.

The outage row fails every request of three evaluators (529) until the first process stops: their
unjudged items go pending, the stage is sent back once, --yes does not approve past them, and the
resume (the API back) judges them.

The batched row puts one subject on the Message Batches API, loses the reply to every batch
creation (the batch is made; the client hears nothing) and fails 5% of its results as errored and
2% as expired: it shows the batches created per subject and pass and the answers that came back.

Retry waits (`RESEARCH_RETRY_WAIT_S`) are 0.2 s here instead of 15 s: faults are drawn per
request, not per second, so shorter waits change the wall time, not the outcome.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator import runner  # noqa: E402
from orchestrator.errors import ApiUnavailable  # noqa: E402
from orchestrator.records import Records  # noqa: E402
from tests.conftest import DEU, without_probes  # noqa: E402
from tests.fakes.anthropic_server import (  # noqa: E402
    FakeAnthropic,
    Fault,
    flaky_results,
    random_faults,
)
from tests.fakes.world import deu_world, evaluator_of  # noqa: E402

BATCHED = "claude-haiku"


def runs_dir() -> Path:
    return Path(os.environ["RESEARCH_RUNS_DIR"])


def statuses(run_dir: Path) -> Counter:
    rec = Records(run_dir / "records.sqlite")
    try:
        counts = Counter(str(v.status) for v in rec.verdicts())
        counts["no verdict"] = len(rec.items()) - sum(counts.values())
        return counts
    finally:
        rec.close()


def drive(
    protocol: Path, run_id: str, between: Callable[[], None] = lambda: None
) -> tuple[str, Counter, int]:
    """(how the first process stopped, the items' verdicts then, resumes until complete);
    `between` runs after the first process (the API comes back)."""
    try:
        first = runner.start(protocol, yes=True, run_id=run_id).status
    except ApiUnavailable:
        first = "failed (API)"
    after_first = statuses(runs_dir() / run_id)
    between()
    resumes, status = 0, first
    while status != "complete" and resumes < 3:
        resumes += 1
        try:
            status = runner.resume(run_id, yes=True).status
        except ApiUnavailable:
            status = "failed (API)"
    return first if status == "complete" else f"{first}, then {status}", after_first, resumes


def faulted(rate: float, seed: int, work: Path) -> dict[str, Any]:
    protocol = work / "deu.yaml"
    protocol.write_text(without_probes(DEU.read_text()))
    with FakeAnthropic(deu_world(), faults=random_faults(rate, seed=seed, slow_s=1.0)) as world:
        os.environ["ANTHROPIC_BASE_URL"] = world.url
        started = time.perf_counter()
        first, after, resumes = drive(protocol, f"faults-{rate}")
        wall = time.perf_counter() - started
        faults = sum(1 for r in world.requests if r.outcome.startswith("fault"))
        requests = len(world.requests)
    end = statuses(runs_dir() / f"faults-{rate}")
    return {
        "setting": f"{rate:.0%} of requests faulted",
        "first": first,
        "after": after,
        "resumes": resumes,
        "end": end,
        "requests": requests,
        "faults": faults,
        "wall": wall,
    }


def judge_outage(work: Path) -> dict[str, Any]:
    """Three of the eight evaluators' requests all fail (529) until the first process stops."""
    protocol = work / "deu.yaml"
    protocol.write_text(without_probes(DEU.read_text()))
    base, down = deu_world(), {"on": True}
    out = {"evaluator-2", "evaluator-5", "evaluator-7"}

    def handler(body: dict[str, Any]) -> Any:
        if down["on"] and body.get("tools") and evaluator_of(body) in out:
            return Fault.overloaded()
        return base(body)

    with FakeAnthropic(handler) as world:
        os.environ["ANTHROPIC_BASE_URL"] = world.url
        started = time.perf_counter()
        first, after, resumes = drive(protocol, "outage", lambda: down.update(on=False))
        wall = time.perf_counter() - started
        faults = sum(1 for r in world.requests if r.outcome.startswith("fault"))
        requests = len(world.requests)
    return {
        "setting": "3 of 8 evaluators' judge calls all fail until the first process stops",
        "first": first,
        "after": after,
        "resumes": resumes,
        "end": statuses(runs_dir() / "outage"),
        "requests": requests,
        "faults": faults,
        "wall": wall,
    }


def batched(seed: int, work: Path) -> dict[str, Any]:
    folder = work / "batched"
    folder.mkdir()
    (folder / "data").symlink_to(DEU.parent / "data")
    text = without_probes(DEU.read_text())
    subject = f"  - id: {BATCHED}\n"
    protocol = folder / "deu.yaml"
    protocol.write_text(text.replace(subject, subject + "    batch: true\n"))
    base = deu_world()
    kinds = (Fault.overloaded(),) * 5 + (Fault("expired"),) * 2
    failing = flaky_results(base, 0.07, seed=seed, kinds=kinds)

    def handler(body: dict[str, Any]) -> Any:
        in_batch = body.get("model") == "claude-haiku-4-5" and not body.get("tools")
        return failing(body) if in_batch else base(body)

    def lose_creation_replies(body: dict[str, Any], n: int) -> Fault | None:
        return Fault.drop_reply() if "requests" in body else None

    with FakeAnthropic(handler, faults=lose_creation_replies) as world:
        os.environ["ANTHROPIC_BASE_URL"] = world.url
        os.environ["RESEARCH_BATCH_POLL_S"] = "0.05"
        started = time.perf_counter()
        first, after, resumes = drive(protocol, "batched")
        wall = time.perf_counter() - started
        sizes = [len(c.body["requests"]) for c in world.batch_creates()]
        batches = len(world.batches)
        requests = len(world.requests)
    rec = Records(runs_dir() / "batched" / "records.sqlite")
    try:
        answered = sum(1 for r in rec.responses().values() if r.error is None)
    finally:
        rec.close()
    return {
        "setting": "batched subject: every creation reply lost, 5% errored + 2% expired",
        "first": first,
        "after": after,
        "resumes": resumes,
        "end": statuses(runs_dir() / "batched"),
        "requests": requests,
        "faults": f"{len(sizes)} creations ({' → '.join(map(str, sizes))} calls), "
        f"{batches} batches; {answered}/400 answered",
        "wall": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", type=float, nargs="+", default=[0.3, 0.5])
    ap.add_argument(
        "--retries", type=int, default=4, help="the SDK's retries (RESEARCH_MAX_RETRIES)"
    )
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    os.environ.update(
        ANTHROPIC_API_KEY="bench",
        RESEARCH_MAX_RETRIES=str(args.retries),
        RESEARCH_RETRY_WAIT_S="0.2",
        RESEARCH_TIMEOUT="30",
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RESEARCH_RUNS_DIR"] = str(Path(tmp) / "runs")
        for rate in args.rates:
            work = Path(tmp) / f"r{rate}"
            work.mkdir()
            rows.append(faulted(rate, args.seed, work))
        outage = Path(tmp) / "outage"
        outage.mkdir()
        rows.append(judge_outage(outage))
        rows.append(batched(args.seed, Path(tmp)))
    print(f"SDK retries {args.retries}, seed {args.seed}; full-size DEU (400 items), no probes")
    print(
        "| setting | first process | after it: scored / pending / unscored | resumes | "
        "at the end: scored / unscored | requests | faults | wall s |"
    )
    print("| --- | --- | --- | ---: | --- | ---: | --- | ---: |")
    for r in rows:
        a, e = r["after"], r["end"]
        after = f"{a['scored']} / {a['pending']} / {a['unscored'] + a['no verdict']}"
        end = f"{e['scored']} / {e['unscored'] + e['pending'] + e['no verdict']}"
        cells = [r["setting"], r["first"], after, r["resumes"], end, r["requests"], r["faults"]]
        print("| " + " | ".join(map(str, cells)) + f" | {r['wall']:.0f} |")


if __name__ == "__main__":
    main()
