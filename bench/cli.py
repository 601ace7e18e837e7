"""How long the CLI takes to answer: `--help`, listing runs, one run's status, and the viewer's
run page, as a researcher types them.

    .venv/bin/python bench/cli.py [--runs 40] [--repeat 5]

Each command runs as a fresh process (what a user waits for is interpreter start plus imports
plus work), `--repeat` times; the table gives the median and the slowest. The runs listed are
copies of one small finished run (made once here against the fake Anthropic world, pilot size),
so `status` reads `--runs` manifests. The viewer row is one HTTP request to a running
`research view`, timed from the client.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import without_probes  # noqa: E402
from tests.fakes.anthropic_server import FakeAnthropic  # noqa: E402
from tests.fakes.world import deu_world  # noqa: E402

RESEARCH = str(Path(sys.executable).with_name("research"))


def timed(argv: list[str], repeat: int, env: dict[str, str]) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env, cwd=ROOT)
        out.append(time.perf_counter() - t0)
    return out


def make_runs(root: Path, n: int, env: dict[str, str]) -> str:
    """One finished DEU pilot (without its probes: no worker needed) against the fake world,
    copied `n` times; its id."""
    protocol = root.parent / "deu-no-probes.yaml"
    protocol.write_text(without_probes((ROOT / "protocols/deu.yaml").read_text()))
    with FakeAnthropic(deu_world()) as world:
        run_env = {**env, "ANTHROPIC_BASE_URL": world.url, "ANTHROPIC_API_KEY": "fake"}
        done = subprocess.run(
            [RESEARCH, "run", str(protocol), "--pilot", "--yes", "--run-id", "bench-0"],
            capture_output=True,
            text=True,
            env=run_env,
            cwd=ROOT,
        )
    if done.returncode != 0:
        sys.exit(f"the pilot did not complete:\n{done.stdout}{done.stderr}")
    for i in range(1, n):
        shutil.copytree(
            root / "bench-0", root / f"bench-{i}", ignore=shutil.ignore_patterns(".lock")
        )
    return "bench-0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        root.mkdir()
        env = {**os.environ, "RESEARCH_RUNS_DIR": str(root), "COLUMNS": "100"}
        run_id = make_runs(root, args.runs, env)
        rows = [
            ("research --help", timed([RESEARCH, "--help"], args.repeat, env)),
            (f"research status ({args.runs} runs)", timed([RESEARCH, "status"], args.repeat, env)),
            ("research status RUN", timed([RESEARCH, "status", run_id], args.repeat, env)),
        ]
        view = subprocess.Popen(
            [RESEARCH, "view", "--port", "0"], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
        )
        try:
            url = re.search(r"http://\S+", view.stdout.readline()).group(0).rstrip("/")
            page = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                httpx.get(f"{url}/runs/{run_id}", timeout=60).raise_for_status()
                page.append(time.perf_counter() - t0)
            rows.append(("view: run page (one request)", page))
        finally:
            view.terminate()
            view.wait()
    print("| command | median | slowest |\n| --- | ---: | ---: |")
    for name, times in rows:
        print(f"| `{name}` | {statistics.median(times):.2f} s | {max(times):.2f} s |")


if __name__ == "__main__":
    main()
