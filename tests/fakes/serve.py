"""Run the fake Anthropic world as its own process (for benchmarks: a remote API is not in ours).

python -m tests.fakes.serve --latency 0.3     # prints the URL, serves until killed
python -m tests.fakes.serve --long-replies --independent   # Claude-length, temperature-1 replies
"""

from __future__ import annotations

import argparse
import signal
import sys

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.world import deu_world


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--long-replies", action="store_true", help="Claude-length subject replies")
    ap.add_argument(
        "--independent", action="store_true", help="a prompt sent again gets a new answer"
    )
    args = ap.parse_args()
    world = deu_world(independent=args.independent, long_replies=args.long_replies)
    server = FakeAnthropic(world, latency=args.latency).start()
    print(server.url, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()
    sys.exit(0)


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
