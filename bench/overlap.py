"""The probe stage beside the evaluators: a DEU pilot's wall time, one stage after the other vs
overlapped, with a remote (fake) judge and the real worker reading with SmolLM2.

    .venv/bin/python bench/overlap.py [--latency 1.0]

The fake Anthropic world (tests/fakes/world.py) runs in its own process with `--latency`
seconds per call, as a remote API would; the worker is started once, on the CPU unless a GPU is
there, with its probe-result cache off (`--no-cache`), so each run reads every response afresh.
A first, untimed run trains the protocol's probes on the worker (later runs reuse them, as a
second run on one worker does). Then the pilot runs with RESEARCH_OVERLAP_PROBES=0 and =1, each
in this process; the table gives each run's wall time and its probe and evaluate stages' (from
their progress bars: start to stop). Note the machine's load beside the figures: the worker's
forward passes share the CPU with the run.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.orchestration import StageClock  # noqa: E402
from orchestrator import runner  # noqa: E402

ANNOUNCED = re.compile(r"research worker: serving .+? on (http://\S+) \(")


def start_worker(log: Path, probes: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "truesight", "--model", "smollm2", "--port", "0", "--no-cache"]
    cmd += ["--probes-dir", str(probes)]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    while (found := ANNOUNCED.search(log.read_text(errors="replace"))) is None:
        if proc.poll() is not None:
            raise SystemExit(f"the worker exited:\n{log.read_text()}")
        time.sleep(0.5)
    os.environ["RESEARCH_WORKER_URL"] = found[1]
    return proc


def one(run_id: str, overlap: bool, runs: Path) -> tuple[float, float, float]:
    os.environ["RESEARCH_OVERLAP_PROBES"] = "1" if overlap else "0"
    clock = StageClock()
    started = time.perf_counter()
    deu = ROOT / "protocols" / "deu.yaml"
    out = runner.start(deu, runs_dir=runs, pilot=True, yes=True, run_id=run_id, progress=clock)
    wall = time.perf_counter() - started
    assert out.status == "complete", out
    return wall, clock.wall("probe"), clock.wall("evaluate")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=1.0)
    args = ap.parse_args()
    os.environ["ANTHROPIC_API_KEY"] = "bench"
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.serve", "--latency", str(args.latency)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        worker = start_worker(work / "worker.log", work / "probes")
        try:
            os.environ["ANTHROPIC_BASE_URL"] = server.stdout.readline().strip()
            one("warm-up", False, work / "runs")  # trains the probes on the worker
            rows = [(name, *one(name, name == "overlapped", work / "runs")) for name in RUNS]
        finally:
            worker.terminate()
            worker.wait()
            server.terminate()
            server.wait()
    load = os.getloadavg()
    print(f"DEU pilot (24 responses), fake judge latency {args.latency:.2f} s, load {load[0]:.2f}")
    print("| run | wall s | probe stage s | evaluate stage s |")
    print("| --- | ---: | ---: | ---: |")
    for name, wall, probe, evaluate in rows:
        print(f"| {name} | {wall:.1f} | {probe:.1f} | {evaluate:.1f} |")


RUNS = ("sequential", "overlapped")

if __name__ == "__main__":
    main()
