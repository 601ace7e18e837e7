"""The worker's prompt cache on an evaluator-like workload: shared system prompt, growing turns.

    RESEARCH_CACHE_DIR=~/.cache/research .venv/bin/python bench/prefix_cache.py \
        [--model smollm2] [--agents 3] [--turns 4] [--system-chars 9000] [--max-tokens 16]

A agents run at once, each T turns: every turn sends the same long system prompt (the start of
protocols/deu.yaml, about 2.3k tokens at 9,000 characters: the protocol an evaluator reads), its
conversation so far, and a new user turn with a few items to judge (~150 tokens). The sequence
runs twice on one worker: without cache_control (every prompt prefilled whole, as before the
prompt cache) and with the breakpoints the agents set (`agents.client.with_cache_control`: the
system prompt and the conversation so far). Prints one table: prompt tokens, tokens prefilled
(input + cache writes), the cache-hit share of prompt tokens, wall time, and whether the greedy
replies were the same.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import anthropic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.client import with_cache_control  # noqa: E402
from bench.worker import running_worker  # noqa: E402


@dataclass
class Tally:
    """Usage summed over one pass of the workload."""

    prompt: int = 0
    prefilled: int = 0
    read: int = 0
    written: int = 0
    replies: list[str] = field(default_factory=list)


def items(agent: int, turn: int) -> str:
    """A user turn like an evaluator's: a few short answers to judge."""
    answers = "\n".join(
        f"R{k:02d}: The tenant may end the lease early under clause {4 + k % 3}; "
        f"it would cost {agent * 100 + turn * 10 + k} pounds in fees and notice."
        for k in range(4)
    )
    return f"Batch {agent}-{turn}. Judge these answers and say which are right:\n{answers}"


def run_agent(url: str, system: str, agent: int, turns: int, max_tokens: int, cache: bool):
    client = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0, timeout=600)
    messages: list[dict] = []
    usages, replies = [], []
    for turn in range(turns):
        messages.append({"role": "user", "content": [{"type": "text", "text": items(agent, turn)}]})
        body = {"model": "local", "max_tokens": max_tokens, "system": system, "messages": messages}
        if cache:
            body = with_cache_control(body)
        msg = client.messages.create(**body, extra_body={"temperature": 0.0})
        reply = msg.content[0].text if msg.content else ""
        messages.append({"role": "assistant", "content": reply or "(no answer)"})
        usages.append(msg.usage)
        replies.append(reply)
    return usages, replies


def run_pass(url: str, system: str, args: argparse.Namespace, cache: bool) -> tuple[Tally, float]:
    tally = Tally()
    started = time.perf_counter()
    with ThreadPoolExecutor(args.agents) as pool:
        jobs = [
            pool.submit(run_agent, url, system, a, args.turns, args.max_tokens, cache)
            for a in range(args.agents)
        ]
        for job in jobs:
            usages, replies = job.result()
            tally.replies += replies
            for u in usages:
                read = u.cache_read_input_tokens or 0
                written = u.cache_creation_input_tokens or 0
                tally.prompt += u.input_tokens + read + written
                tally.prefilled += u.input_tokens + written
                tally.read += read
                tally.written += written
    return tally, time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2")
    p.add_argument("--agents", type=int, default=3)
    p.add_argument("--turns", type=int, default=4)
    p.add_argument("--system-chars", type=int, default=9000)
    p.add_argument("--max-tokens", type=int, default=16)
    args = p.parse_args()
    protocol = (ROOT / "protocols" / "deu.yaml").read_text(encoding="utf-8")
    system = "You are an evaluator. Read the protocol, then judge.\n\n" + protocol
    system = system[: args.system_chars]
    with running_worker(args.model) as url:
        run_agent(url, "warm-up", 0, 1, 2, cache=False)  # first-call costs out of the timings
        plain, plain_s = run_pass(url, system, args, cache=False)
        cached, cached_s = run_pass(url, system, args, cache=True)
    calls = args.agents * args.turns
    print(
        f"{args.agents} agents x {args.turns} turns = {calls} calls, max_tokens {args.max_tokens}"
    )
    print("| pass | prompt tokens | prefilled | cache reads | cache writes | hit share | wall s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, t, s in (("no cache_control", plain, plain_s), ("cache_control", cached, cached_s)):
        share = t.read / t.prompt if t.prompt else 0.0
        print(
            f"| {name} | {t.prompt} | {t.prefilled} | {t.read} | {t.written} "
            f"| {share:.0%} | {s:.1f} |"
        )
    same = sum(a == b for a, b in zip(plain.replies, cached.replies, strict=True))
    print(f"speed-up {plain_s / cached_s:.2f}x; same greedy replies: {same} of {calls}")


if __name__ == "__main__":
    main()
