"""The worker process: its command line, loading the model, serving the app until a signal.

Run::

    python -m truesight --model smollm2 --port 8765 [--host 127.0.0.1] [--token T] \
        [--device auto] [--max-batch 16] [--cache-dir DIR] [--cache PATH | --no-cache] \
        [--probes-dir DIR] [--parent-pid PID] [--prefix-cache-mb 4096]

It loads the model, then serves the Messages API until SIGTERM or SIGINT. Beyond loopback it
insists on a --token, which every request but GET /health must then carry. With --parent-pid
(what a run passes for a worker it starts) it also stops when that process ends, killed or not
(`truesight.lifetime`). The HTTP app itself is `truesight.app`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from truesight.lifetime import watch_parent
from truesight.paths import DEFAULT_CACHE_DIR, probe_cache_path, probes_dir

LOOPBACK = {"127.0.0.1", "localhost", "::1"}

PREFIX_CACHE_MB = 4096.0
"""About 90k tokens of SmolLM2-135M's KV in float32. Each entry is a full copy of its prefix, so
every evaluator's conversation holds the shared system prompt again: with 1024 MB the offline
pilot's four evaluators (~7k tokens each) evicted the system prompt between their turns."""
BATCHING = ("continuous", "static")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(prog="python -m truesight", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2", help="smollm2, a local directory or a hub id")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument("--token", default=None, help="required from clients; needed beyond loopback")
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, ...")
    p.add_argument("--max-batch", type=int, default=16, help="most requests per forward pass")
    p.add_argument(
        "--batch-window-ms", type=float, default=5.0, help="wait this long for a batch to fill"
    )
    p.add_argument(
        "--batching",
        choices=BATCHING,
        default="continuous",
        help="continuous: requests join and leave the running batch between decode steps, each "
        "reply returns when its row ends; static: one generate per batch, every row waits for "
        "the longest (models with sliding-window layers always run static)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        help="root of the worker's cache: converted models, probe results, trained probes "
        "(default ~/.cache/research)",
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="SQLite file for probe results (default CACHE_DIR/probe-cache.sqlite)",
    )
    p.add_argument("--no-cache", action="store_true", help="compute every probe result afresh")
    p.add_argument(
        "--probes-dir",
        type=Path,
        default=None,
        help="trained probes for `linear` and `tokens` (default CACHE_DIR/probes)",
    )
    p.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        help="stop when this process ends (a run passes its own pid for a worker it starts)",
    )
    p.add_argument(
        "--prefix-cache-mb",
        type=float,
        default=PREFIX_CACHE_MB,
        help="memory (MB) for the KV of prompt prefixes marked with cache_control; 0 turns it off",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Start the worker; return the process exit code."""
    args = parse_args(argv)
    if args.host not in LOOPBACK and not args.token:
        sys.stderr.write(
            f"research worker: --token is required to listen beyond loopback (--host {args.host})\n"
        )
        return 2
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.parent_pid is not None:  # before the model loads: a run may die during that
        watch_parent(args.parent_pid)
    # Imported here so that a bad command line fails at once, before torch loads (seconds).
    from truesight.app import create_app
    from truesight.model import load_model
    from truesight.probes.cache import ResultCache

    loaded = load_model(args.model, device=args.device, cache_dir=args.cache_dir)
    cache = None if args.no_cache else ResultCache(args.cache or probe_cache_path(args.cache_dir))
    app = create_app(
        loaded,
        token=args.token,
        max_batch=args.max_batch,
        window_s=args.batch_window_ms / 1000,
        probe_cache=cache,
        probes_dir=args.probes_dir or probes_dir(args.cache_dir),
        parent_pid=args.parent_pid,
        prefix_cache_mb=args.prefix_cache_mb,
        batching=args.batching,
    )
    runs_on = f"{loaded.device}, {str(loaded.dtype).removeprefix('torch.')}"
    return serve(app, args.host, args.port, model=loaded.name, runs_on=runs_on)


def serve(app: object, host: str, port: int, *, model: str, runs_on: str) -> int:
    """Serve `app` until SIGTERM or SIGINT, saying once on stderr where it listens.
    Returns 0 after a clean shutdown, 1 if the server never started."""
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn, announcing itself once listening and exiting 0 after a signal."""

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if not self.started:
                return
            bound = self.servers[0].sockets[0].getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            url = f"http://{shown}:{bound}"
            # The one line the worker prints: clients wait for it (or for /health).
            line = f"research worker: serving {model} on {url} ({runs_on})"
            print(line, file=sys.stderr, flush=True)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn re-raises the signal after its graceful shutdown, so the process would die
            # of SIGTERM or a KeyboardInterrupt traceback; a clean shutdown should just exit 0.
            sigs = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in sigs}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,
        access_log=False,
        lifespan="on",
        # a generate can run for minutes on a CPU; a stop request should not wait for it
        timeout_graceful_shutdown=2,
    )
    server = Server(config)
    server.run()
    return 0 if server.started else 1
