"""What every stage node gets at run time (LangGraph's runtime context; never checkpointed).

The context carries the open run directory, the protocol as it is run (with `--offline` applied),
the settings read from the environment (endpoints and credentials: nothing in the context is
ever written to the run directory), and the progress reporter the CLI draws with. `client` is the
one way a node gets an LLM client.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from typing import Protocol as TypingProtocol

from agents.client import Endpoint, LLMClient
from agents.loop import Retry
from agents.truesight import TruesightClient
from orchestrator.protocol.schema import GenerationParams, ModelRef, Protocol, Subject
from orchestrator.rundir import RunDir
from orchestrator.settings import Settings

T = TypeVar("T")
OFFLINE_MAX_TOKENS = 256
"""Cap on subject tokens offline: a 135M model on a laptop CPU, not a frontier model."""
OFFLINE_JUDGE_MAX_TOKENS = 768
"""Room for OFFLINE_CHUNK verdicts at their longest: deu.yaml's verdict with a 120-character
evidence quote of one-character tokens (a small model's "1.1.1.…") is ~165 tokens, four are ~660.
At 384 such a call was cut off, and asked again it was cut off the same way. A reply ends at its
own EOS, so the room costs nothing when the verdicts are short."""
OFFLINE_EVALUATORS = 4
OFFLINE_CHUNK = 4
"""Items per forced submit_verdicts call offline: ~80 tokens a typical verdict."""
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


def as_run(protocol: Protocol, *, offline: bool, local_model: str | None) -> Protocol:
    """The protocol as the run calls it: offline, every model becomes the local worker's."""
    if not offline:
        return protocol
    # a run's manifest names its local model; the environment's is for manifests without one
    model = local_model or Settings.from_env().local_model
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


def endpoint(ref: ModelRef, settings: Settings) -> Endpoint:
    """Where `ref` is served and how to call it: the local worker (the first, when several
    serve probes), an OpenAI-compatible endpoint, or the Anthropic API."""
    if ref.provider == "local":
        return Endpoint(
            base_url=ref.base_url or settings.worker_url,
            api_key=settings.worker_secret() or "local",
            max_retries=settings.max_retries,
            timeout_s=settings.local_timeout_s,
            concurrency=ref.concurrency,
            local=True,
        )
    if ref.provider == "openai":
        return Endpoint(
            base_url=ref.base_url or settings.openai_base_url,
            api_key=settings.openai_key(),
            max_retries=settings.max_retries,
            timeout_s=settings.timeout_s,
            concurrency=ref.concurrency,
        )
    return Endpoint(
        base_url=ref.base_url or settings.anthropic_base_url,
        api_key=settings.api_key(),
        max_retries=settings.max_retries,
        timeout_s=settings.timeout_s,
        concurrency=ref.concurrency,
    )


@dataclass
class RunContext:
    run: RunDir
    protocol: Protocol
    progress: Progress = field(default_factory=NoProgress)
    stop: threading.Event = field(default_factory=threading.Event)
    """Set on Ctrl-C: nodes running in LangGraph's worker threads see no signal, only this."""
    given_settings: Settings | None = None
    """Settings to run with; None reads the environment when they are first needed."""

    @property
    def settings(self) -> Settings:
        # Read on first use, not at construction: a context made before the environment is set
        # (a test fixture) still runs with what the environment says when the calls start.
        if self.given_settings is None:
            self.given_settings = Settings.from_env()
        return self.given_settings

    def endpoint(self, ref: ModelRef) -> Endpoint:
        return endpoint(ref, self.settings)

    def client(self, ref: ModelRef) -> LLMClient:
        """An LLM client for `ref`, by its provider, that records every call in this run's
        ledger. Create it in the event loop that uses it (`async with ctx.client(ref) as
        client:`)."""
        if ref.provider == "openai":
            # imported here, not above: `openai` is an optional extra, and a run that calls no
            # openai model must not need it (check_credentials says what to install)
            from agents.openai_client import OpenAIClient

            return OpenAIClient(self.endpoint(ref), self.run.records, self.sha)
        return LLMClient(self.endpoint(ref), self.run.records, self.sha)

    @property
    def retry(self) -> Retry:
        """How often an agent's failed call is sent again, after the SDK's own retries."""
        return Retry(self.settings.retry_passes, self.settings.retry_wait_s)

    def truesight(self) -> TruesightClient:
        """A client for the workers' probe endpoints, each text read by one of them; close it
        when done."""
        return TruesightClient(self.settings.worker_urls, self.settings.worker_secret())

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
