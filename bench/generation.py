"""Generation under concurrent load: continuous vs static batching on one worker.

    RESEARCH_CACHE_DIR=~/.cache/research .venv/bin/python bench/generation.py \
        [--model smollm2] [--requests 16] [--min-tokens 16] [--max-tokens 256] [--seed 0]

N requests are sent at once, each a different short question with max_tokens drawn uniformly
from [min, max] (seeded), greedy; `ignore_eos`-like behaviour is not available, so replies that
end on their own end early in both modes alike. The same requests run against a worker started
with `--batching static` (one `generate` per batch: every row waits for the longest) and one with
`--batching continuous`. Prints one table: time to the first reply, mean and longest latency,
output tokens per second over the whole burst, and whether every greedy reply was the same text.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.worker import running_worker  # noqa: E402

TOPICS = [
    "the history of bread", "how tides work", "why the sky is blue", "the rules of chess",
    "how vaccines train immunity", "what a mortgage is", "how bees make honey",
    "the causes of inflation", "how a bicycle stays upright", "what photosynthesis does",
    "how to read a nutrition label", "the water cycle", "how compilers work",
    "what a tenancy deposit protects", "the life of a star", "how glaciers move",
]  # fmt: skip


def burst(url: str, limits: list[int]) -> tuple[list[float], list[str], int, float]:
    """Send every request at once; each one's latency, the texts, output tokens, wall time."""
    client = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0, timeout=1800)

    def one(i: int) -> tuple[float, str, int]:
        start = time.perf_counter()
        reply = client.messages.create(
            model="local",
            max_tokens=limits[i],
            extra_body={"temperature": 0.0},
            messages=[{"role": "user", "content": f"Explain {TOPICS[i % len(TOPICS)]}."}],
        )
        return time.perf_counter() - start, reply.content[0].text, reply.usage.output_tokens

    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(limits)) as pool:
        done = list(pool.map(one, range(len(limits))))
    wall = time.perf_counter() - t0
    return [d[0] for d in done], [d[1] for d in done], sum(d[2] for d in done), wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2")
    p.add_argument("--requests", type=int, default=16)
    p.add_argument("--min-tokens", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = random.Random(args.seed)
    limits = [rng.randint(args.min_tokens, args.max_tokens) for _ in range(args.requests)]
    rows, texts = [], {}
    for mode in ("static", "continuous"):
        with running_worker(args.model, extra=["--batching", mode]) as url:
            burst(url, [4, 4])  # warm-up: first-call costs are not batching's
            latencies, texts[mode], tokens, wall = burst(url, limits)
        rows.append((mode, min(latencies), statistics.mean(latencies), max(latencies),
                     tokens / wall, tokens))  # fmt: skip
    same = texts["static"] == texts["continuous"]
    print(f"{args.requests} concurrent requests, max_tokens {args.min_tokens}–{args.max_tokens} "
          f"(seed {args.seed}), model {args.model}")  # fmt: skip
    print(
        "| batching | first reply (s) | mean latency (s) | last reply (s) | output tok/s | tokens |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for mode, first, mean, last, rate, tokens in rows:
        print(f"| {mode} | {first:.1f} | {mean:.1f} | {last:.1f} | {rate:.1f} | {tokens} |")
    print(f"same greedy replies in both modes: {'yes' if same else 'no'}")
    if not same:
        diff = sum(a != b for a, b in zip(texts["static"], texts["continuous"], strict=True))
        print(f"  {diff} of {args.requests} differ (padding changes float sums; see docs)")


if __name__ == "__main__":
    main()
