"""Orchestration overhead: a full-size DEU run against the fake server with a fixed latency.

    .venv/bin/python bench/orchestration.py [--latency 0.3] [--concurrency 4 8 16]

Every checkpoint is auto-approved; the fake server (tests/fakes/world.py's scripted subjects,
evaluators and analyst) runs in its own process, as a remote API would. The run makes 513 calls:

- collect: 400 subject calls, 200 per subject with C in flight each: ceil(200 / C) rounds;
- evaluate: 8 evaluators side by side, one batch each (50 items, a planted duplicate and their
  share of the 40 overlap items: 53-59 items). Each makes 14 calls one after another:
  read_protocol, comprehension_check, then get_batch and submit_verdicts for each of its 6
  chunks of up to 10 items (chunk_size);
- analyze: 1 forced write_qualitative call by the analyst.

The ideal wall time is what those calls alone take, latency L each and nothing else:
ceil(200 / C) x L + 14 L + 1 L. `ideal` reads the rounds from the run's call ledger (collect:
each subject's calls in rounds of C; any other stage: its longest chain of calls for one batch
and role), so it follows the run if the protocol or the agents change. The table shows wall time
over that ideal, the collect stage alone over its ideal (the part that grows with the number of
calls), and peak memory (RSS). Each row runs in a fresh process, so start-up costs (imports)
count, as they do for a user.

The run is deu.yaml without its `probes:` section: the probes are the local worker's forward
passes, measured by bench/truesight.py, not orchestration (and their datasets are named relative
to protocols/, which the copy under a temp folder is not in).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator import runner  # noqa: E402


class StageClock:
    """A progress reporter that only notes when each stage starts and stops."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.stopped: dict[str, float] = {}

    def start(self, stage: str, total: int, done: int = 0) -> None:
        self.started.setdefault(stage, time.perf_counter())

    def advance(self, stage: str, n: int = 1) -> None:
        pass

    def stop(self, stage: str) -> None:
        self.stopped[stage] = time.perf_counter()

    def wall(self, stage: str) -> float:
        return self.stopped[stage] - self.started[stage]


PROBES = re.compile(r"^probes:\n(?:(?:[ \t].*)?\n)*", re.MULTILINE)
"""The top-level `probes:` section: its line and every indented or blank line after it."""


def bench_protocol(concurrency: int, work: Path) -> Path:
    """deu.yaml with C calls in flight per model and no probes, written under `work`."""
    text = (ROOT / "protocols" / "deu.yaml").read_text()
    text, found = PROBES.subn("", text)
    if found != 1:
        raise SystemExit("bench/orchestration.py: deu.yaml has no top-level `probes:` to leave out")
    text = re.sub(r"concurrency: \d+", f"concurrency: {concurrency}", text)
    protocol = work / f"deu-c{concurrency}.yaml"
    protocol.write_text(text)
    return protocol


def one(latency: float, concurrency: int, work: Path) -> tuple[float, float, int, float, float]:
    protocol = bench_protocol(concurrency, work)
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.serve", "--latency", str(latency)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        os.environ["ANTHROPIC_BASE_URL"] = server.stdout.readline().strip()
        clock = StageClock()
        started = time.perf_counter()
        out = runner.start(
            protocol, runs_dir=work / "runs", yes=True, run_id=f"c{concurrency}", progress=clock
        )
        wall = time.perf_counter() - started
        assert out.status == "complete", out
    finally:
        server.terminate()
        server.wait()
    run_dir = work / "runs" / f"c{concurrency}"
    collect_rounds, other_rounds = rounds(run_dir, concurrency)
    ideal = (collect_rounds + other_rounds) * latency
    return wall, ideal, out_calls(run_dir), clock.wall("collect"), collect_rounds * latency


def out_calls(run_dir: Path) -> int:
    from orchestrator.records import Records

    return int(sum(u["calls"] for u in Records(run_dir / "records.sqlite").usage().values()))


_CHAINS = (
    "SELECT stage, SUM(attempts) AS n FROM calls WHERE stage != 'collect' "
    "GROUP BY stage, item, role"
)
"""The calls of one batch's evaluator (or of the analyst) wait for each other: a chain each."""


def rounds(run_dir: Path, concurrency: int) -> tuple[int, int]:
    """(collect, the rest): how many latencies the run's calls take at the least. Subjects run
    side by side with `concurrency` calls in flight each; in any other stage the chains run side
    by side and the longest decides; the stages run one after another."""
    with closing(sqlite3.connect(run_dir / "records.sqlite")) as db:
        subjects = db.execute(
            "SELECT SUM(attempts) FROM calls WHERE stage = 'collect' GROUP BY model"
        ).fetchall()
        chains = db.execute(_CHAINS).fetchall()
    collect = max((math.ceil(n / concurrency) for (n,) in subjects), default=0)
    longest: dict[str, int] = {}
    for stage, n in chains:
        longest[stage] = max(longest.get(stage, 0), n)
    return collect, sum(longest.values())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.3)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ["ANTHROPIC_API_KEY"] = "bench"
    if args.one:  # one configuration, in a fresh process: cold imports count, as for a user
        with tempfile.TemporaryDirectory() as tmp:
            wall, ideal, calls, collect, collect_ideal = one(args.latency, args.one, Path(tmp))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            json.dumps([args.one, calls, wall, ideal, wall / ideal, collect / collect_ideal, rss])
        )
        return
    rows = []
    for c in args.concurrency:
        cmd = [sys.executable, __file__, "--one", str(c), "--latency", str(args.latency)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(
        f"latency {args.latency * 1000:.0f} ms; ideal = the calls' latency alone: collect in "
        "rounds of C per subject, then the longest evaluator's turns, then the analyst's"
    )
    print(
        "| C per subject | calls | wall s | ideal s | wall/ideal | collect/ideal | peak RSS MiB |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c, calls, wall, ideal, ratio, collect, rss in rows:
        cells = [c, calls, f"{wall:.2f}", f"{ideal:.2f}", f"{ratio:.3f}", f"{collect:.3f}"]
        print("| " + " | ".join(map(str, cells)) + f" | {rss:.0f} |")


if __name__ == "__main__":
    main()
