"""Orchestration overhead: a full-size DEU run against the fake server with a fixed latency.

    .venv/bin/python bench/orchestration.py [--latency 0.3] [--concurrency 4 8 16]

400 subject calls (2 subjects, so 2 x C in flight) plus 8 evaluator batches, every checkpoint
auto-approved; the fake server runs in its own process, as a remote API would. The ideal wall
time is 400 x latency / (2 C) for collect plus one latency for the parallel evaluator batches.
The table shows wall time over that ideal, the collect stage alone over its ideal (the part that
grows with the number of calls), and peak memory (RSS). Each row runs in a fresh process, so
start-up costs (imports) count, as they do for a user.

The run is deu.yaml without its `probes:` section: the probes are the local worker's forward
passes, measured by bench/truesight.py, not orchestration (and their datasets are named relative
to protocols/, which the copy under a temp folder is not in).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
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


def one(latency: float, concurrency: int, work: Path) -> tuple[float, float, int, float]:
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
    calls = out_calls(work / "runs" / f"c{concurrency}")
    ideal = 400 * latency / (2 * concurrency) + latency
    return wall, ideal, calls, clock.wall("collect")


def out_calls(run_dir: Path) -> int:
    from orchestrator.records import Records

    return int(sum(u["calls"] for u in Records(run_dir / "records.sqlite").usage().values()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.3)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ["ANTHROPIC_API_KEY"] = "bench"
    if args.one:  # one configuration, in a fresh process: cold imports count, as for a user
        with tempfile.TemporaryDirectory() as tmp:
            wall, ideal, calls, collect = one(args.latency, args.one, Path(tmp))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        collect_ideal = 400 * args.latency / (2 * args.one)
        print(
            json.dumps([args.one, calls, wall, ideal, wall / ideal, collect / collect_ideal, rss])
        )
        return
    rows = []
    for c in args.concurrency:
        cmd = [sys.executable, __file__, "--one", str(c), "--latency", str(args.latency)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"latency {args.latency * 1000:.0f} ms, 400 subject calls + 8 evaluator batches")
    print(
        "| C per subject | calls | wall s | ideal s | wall/ideal | collect/ideal | peak RSS MiB |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c, calls, wall, ideal, ratio, collect, rss in rows:
        cells = [c, calls, f"{wall:.2f}", f"{ideal:.2f}", f"{ratio:.3f}", f"{collect:.3f}"]
        print("| " + " | ".join(map(str, cells)) + f" | {rss:.0f} |")


if __name__ == "__main__":
    main()
