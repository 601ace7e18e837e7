"""What every stage node gets at run time (LangGraph's runtime context; never checkpointed).

The context carries the open run directory, the protocol as it is run (with `--offline` applied),
the endpoints, and the progress reporter the CLI draws with. Credentials live here and only here,
which is why nothing in it is ever written to the run directory.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from typing import Protocol as TypingProtocol

from agents.client import Endpoint
from orchestrator.protocol.schema import GenerationParams, ModelRef, Protocol, Subject
from orchestrator.rundir import RunDir

T = TypeVar("T")
DEFAULT_WORKER_URL = "http://127.0.0.1:8765"
OFFLINE_MAX_TOKENS = 256
"""Cap on subject tokens offline: a 135M model on a laptop CPU, not a frontier model."""
OFFLINE_JUDGE_MAX_TOKENS = 384
OFFLINE_EVALUATORS = 4
OFFLINE_CHUNK = 4
"""Items per forced submit_verdicts call offline: ~80 tokens a verdict within the 384 cap."""
OFFLINE_STR = 120
"""Longest string in an offline verdict (an evidence quote), in characters."""


class Progress(TypingProtocol):
    def start(self, stage: str, total: int, done: int = 0) -> None: ...
    def advance(self, stage: str, n: int = 1) -> None: ...
    def stop(self, stage: str) -> None: ...


class NoProgress:
    def start(self, stage: str, total: int, done: int = 0) -> None:
        pass

    def advance(self, stage: str, n: int = 1) -> None:
        pass

    def stop(self, stage: str) -> None:
        pass


def worker_url() -> str:
    return os.environ.get("RESEARCH_WORKER_URL", DEFAULT_WORKER_URL).rstrip("/")


def worker_token() -> str | None:
    return os.environ.get("RESEARCH_WORKER_TOKEN")


def local_model_name() -> str:
    return os.environ.get("RESEARCH_LOCAL_MODEL", "smollm2")


def as_run(protocol: Protocol, *, offline: bool, local_model: str | None) -> Protocol:
    """The protocol as the run calls it: offline, every model becomes the local worker's."""
    if not offline:
        return protocol
    model = local_model or local_model_name()
    first = protocol.subjects[0].params
    params = first.model_copy(update={"max_tokens": min(first.max_tokens, OFFLINE_MAX_TOKENS)})
    subject = Subject(id="local", provider="local", model=model, params=params, concurrency=16)
    judge = ModelRef(
        provider="local",
        model=model,
        # a verdict is ~60 tokens; a small model that misses the format would ramble to the cap
        params=GenerationParams(max_tokens=OFFLINE_JUDGE_MAX_TOKENS, temperature=0.0),
        concurrency=16,
    )
    # One attempt: a 135M model told what was wrong with its verdicts does not fix them, and
    # each retry costs a minute of CPU; what it cannot score stays unscored, with the reason.
    # It cannot plan tool calls either (scripted agents), nor pass a comprehension check: the
    # offline judge is a check of the pipeline, not evidence, and the report says so.
    # Its forward passes are the cost (prompt tokens, mostly): fewer evaluators repeat the
    # protocol less often; small chunks and short strings keep a verdict batch inside its
    # token cap, so the constrained output closes instead of being cut off.
    ev = protocol.evaluation
    verdict = {
        name: f.model_copy(update={"max_length": min(f.max_length or OFFLINE_STR, OFFLINE_STR)})
        if f.type == "str"
        else f
        for name, f in ev.verdict.items()
    }
    evaluation = ev.model_copy(
        update={
            "judge": judge,
            "max_attempts": 1,
            "agent": "scripted",
            "comprehension": [],
            "evaluators": min(ev.evaluators, OFFLINE_EVALUATORS),
            "chunk_size": min(ev.chunk_size, OFFLINE_CHUNK),
            "verdict": verdict,
        }
    )
    update: dict[str, Any] = {"subjects": [subject], "evaluation": evaluation}
    if (q := protocol.analysis.qualitative) is not None and q.model is not None:
        # the analyst defaults to the judge, which is the local model now
        qualitative = q.model_copy(update={"model": None})
        update["analysis"] = protocol.analysis.model_copy(update={"qualitative": qualitative})
    return protocol.model_copy(update=update)


def models_of(protocol: Protocol) -> list[str]:
    subjects = [f"{s.id}={s.provider}:{s.model}" for s in protocol.subjects]
    judge = protocol.evaluation.judge
    return subjects + [f"judge={judge.provider}:{judge.model}"]


def endpoint(ref: ModelRef) -> Endpoint:
    retries = int(os.environ.get("RESEARCH_MAX_RETRIES", "4"))
    if ref.provider == "local":
        return Endpoint(
            base_url=ref.base_url or worker_url(),
            api_key=os.environ.get("RESEARCH_WORKER_TOKEN", "local"),
            max_retries=retries,
            timeout_s=float(os.environ.get("RESEARCH_LOCAL_TIMEOUT", "900")),
            concurrency=ref.concurrency,
            local=True,
        )
    return Endpoint(
        base_url=ref.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None,
        api_key=os.environ.get("ANTHROPIC_API_KEY"),
        max_retries=retries,
        timeout_s=float(os.environ.get("RESEARCH_TIMEOUT", "120")),
        concurrency=ref.concurrency,
    )


@dataclass
class RunContext:
    run: RunDir
    protocol: Protocol
    progress: Progress = field(default_factory=NoProgress)
    stop: threading.Event = field(default_factory=threading.Event)
    """Set on Ctrl-C: nodes running in LangGraph's worker threads see no signal, only this."""

    def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a node's calls on a fresh event loop, cancelled promptly when `stop` is set.

        Calls already answered are in the ledger; a cancelled one is simply made on resume.
        """

        async def watched() -> T:
            task = asyncio.ensure_future(coro)
            while not task.done():
                if self.stop.is_set():
                    task.cancel()
                await asyncio.wait([task], timeout=0.2)
            return task.result()

        try:
            return asyncio.run(watched())
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None

    @property
    def sha(self) -> str:
        """The protocol hash that keys the call ledger: the one the run started with, so an
        approved amendment to the analysis never makes a call be paid again."""
        m = self.run.manifest
        return m.preregistered_sha256 or m.protocol_sha256

    def log(self, stage: str, kind: str, text: str, actor: str = "orchestrator") -> int:
        return self.run.log.append(stage, actor, kind, text)
