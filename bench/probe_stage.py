"""The probe stage at full size: a DEU run's 400 Claude-length responses read by the smollm2 worker.

    RESEARCH_CACHE_DIR=~/.cache/research .venv/bin/python bench/probe_stage.py [--n 400]
        [--model smollm2] [--batch-size 16]

`research run` on protocols/deu.yaml (with n_per_cell = ceil(N / 8) for --n N; the full size is
400), every checkpoint approved, against the fake Anthropic server in its own process, with
`--long-replies --independent`: subjects answer at Claude's length (a few hundred tokens, built
from the task's document; tests/fakes/long_replies.py) and replicates of one prompt differ, as at
temperature 1. The protocol's own `probes:` section runs — surprisal, author, followup and the two
trained linear probes, with the subject's prompt as context (`context: prompt`) — on a worker
started here (`python -m truesight`, result cache off) whose trained probes are copies of those in
CACHE_DIR/probes, so the stage finds them and does not train (if it has to, the table says how
long that took, apart from reading).

What it measures is what a user waits for: the probe stage from LOG.md (screen done → probe
done, to the second: training check, transfer readouts, reading every response, the stage's
commit), and within it the reading alone (the stage's progress bar, start to stop), with the
worker's /health counters over the reading. Tokens are counted with the worker's tokenizer:
response, context (the prompt as the stage sends it), and tokens forwarded per token read
(context + response). A run on fewer than 400 responses also shows the reading time scaled to
400, labelled as an extrapolation.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.worker import running_worker  # noqa: E402
from orchestrator import runner  # noqa: E402
from orchestrator.nodes.conversation import generated_replies, transcript  # noqa: E402
from orchestrator.records import Records  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402
from truesight.model import load_model  # noqa: E402

FULL = 400
CELLS = 8  # framing x planted x 2 subjects


class ProbeClock:
    """A progress reporter that notes when each stage's bar starts and stops, and the worker's
    /health counters when the probe stage's reading starts and stops."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.started: dict[str, float] = {}
        self.stopped: dict[str, float] = {}
        self.health: dict[str, dict] = {}

    def start(self, stage: str, total: int, done: int = 0) -> None:
        if stage == "probe":
            self.health.setdefault("before", self._health())
        self.started.setdefault(stage, time.perf_counter())

    def advance(self, stage: str, n: int = 1) -> None:
        pass

    def stop(self, stage: str) -> None:
        self.stopped[stage] = time.perf_counter()
        if stage == "probe":
            self.health["after"] = self._health()

    def wall(self, prefix: str) -> float:
        return sum(self.stopped[s] - t for s, t in self.started.items() if s.startswith(prefix))

    def counters(self) -> dict[str, int]:
        before, after = self.health["before"], self.health["after"]
        return {k: after[k] - before[k] for k in after if isinstance(after[k], int)}

    def _health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=30).json()


def bench_protocol(n: int, batch_size: int | None, work: Path) -> Path:
    """deu.yaml at ceil(n / 8) per cell (and the probes' batch size, if given) under `work`,
    beside a copy of its data folder (the probes' datasets are named relative to it)."""
    text = (ROOT / "protocols" / "deu.yaml").read_text()
    per_cell = math.ceil(n / CELLS)
    for key, value in (("n_per_cell", per_cell), ("pilot_n_per_cell", min(3, per_cell))):
        text, found = re.subn(rf"(?m)^  {key}: \d+$", f"  {key}: {value}", text)
        if found != 1:
            raise SystemExit(f"bench/probe_stage.py: deu.yaml has no design.{key} to set")
    if batch_size is not None:
        text = text.replace("\nprobes:\n", f"\nprobes:\n  batch_size: {batch_size}\n", 1)
    shutil.copytree(ROOT / "protocols" / "data", work / "data")
    protocol = work / "deu.yaml"
    protocol.write_text(text)
    return protocol


def stage_seconds(run_dir: Path) -> float:
    """Screen done to probe done, from LOG.md's timestamps (to the second)."""
    done = {}
    for block in (run_dir / "LOG.md").read_text().split("\n## ")[1:]:
        number, stamp, stage, _actor, kind = block.splitlines()[0].split(" · ")
        if kind == "stage_done":
            done[stage] = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (done["probe"] - done["screen"]).total_seconds()


def token_counts(run_dir: Path, model: str, cache_dir: Path) -> tuple[int, list[int], list[int]]:
    """(responses read, response tokens, context tokens) of what the probe stage read."""
    rec = Records(run_dir / "records.sqlite")
    read = {r.item_id for r in rec.probe_results("surprisal") if r.error is None}
    items = [i for i in rec.items() if i.id in read]
    generated = generated_replies(rec, items)
    responses = rec.responses()
    tok = load_model(model, device="cpu", cache_dir=cache_dir).tokenizer
    texts = [len(tok(responses[i.id].text)["input_ids"]) for i in items]
    contexts = [
        len(tok(transcript(i, generated.get(i.id, [])) + "\n\n")["input_ids"]) for i in items
    ]
    return len(items), texts, contexts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=FULL, help="responses (rounded up to 8 cells)")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--batch-size", type=int, help="probes.batch_size (default: the protocol's)")
    args = ap.parse_args()
    cache_dir = Settings.from_env().cache_dir
    os.environ["ANTHROPIC_API_KEY"] = "bench"
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        protocol = bench_protocol(args.n, args.batch_size, work)
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.serve", "--long-replies", "--independent"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            os.environ["ANTHROPIC_BASE_URL"] = server.stdout.readline().strip()
            with running_worker(args.model, probes_from=cache_dir / "probes") as url:
                os.environ["RESEARCH_WORKER_URL"] = url
                clock = ProbeClock(url)
                runner.start(protocol, runs_dir=work / "runs", yes=True, run_id="b", progress=clock)
        finally:
            server.terminate()
            server.wait()
        run_dir = work / "runs" / "b"
        stage = stage_seconds(run_dir)
        n, texts, contexts = token_counts(run_dir, args.model, cache_dir)
    reading, training = clock.wall("probe"), clock.wall("train probe ")
    counts = clock.counters()
    read = sum(texts) + sum(contexts)
    batch = args.batch_size or "the protocol's"
    print(
        f"deu.yaml probes (surprisal, author, followup, 2 trained linear; context: prompt) on "
        f"{args.model}, batch size {batch}, {os.cpu_count()} CPUs; 1-min load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after. `rest` = the stage less the "
        f"reading: finding (or training: {training:.1f} s) the probes, transfer-set readouts."
    )
    print(
        "| responses | mean response tokens | mean context tokens | probe stage s (LOG) "
        "| reading s | rest s | responses/s | forward passes | tokens forwarded / token read |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {n} | {sum(texts) / n:.0f} | {sum(contexts) / n:.0f} | {stage:.0f} | {reading:.1f} "
        f"| {stage - reading:.0f} | {n / reading:.2f} | {counts['probe_forward_passes']} "
        f"| {counts['probe_tokens_forwarded'] / read:.2f} |"
    )
    if n != FULL:
        scaled = FULL / n * reading
        whole = scaled + stage - reading  # the rest does not grow with the responses
        print(
            f"\nExtrapolated, not measured: reading {FULL} responses at this rate would take "
            f"{scaled:.0f} s, the stage with it {whole:.0f} s ({whole / 60:.1f} min)."
        )


if __name__ == "__main__":
    main()
