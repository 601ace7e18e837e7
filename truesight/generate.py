"""Batch concurrent generation requests into one `model.generate` call per sampling setting.

Requests arrive on an asyncio queue. After the first, the batcher waits a few milliseconds for
more (up to `max_batch`), groups them by sampling settings and runs each group as one left-padded
`generate` in a single worker thread, so the event loop keeps accepting requests meanwhile and
only one forward pass runs at a time. Requests that arrive during a forward pass form the next
batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from truesight.cancel import CancelFlag, ClientGone, StopCancelled
from truesight.constrain import JsonConstraint, JsonSchemaProcessor
from truesight.decode import Finished, finish_sequence
from truesight.model import LoadedModel
from truesight.prefill import RowPrefix, padded_batch, prepare_row
from truesight.prefix_cache import PrefixCache

T = TypeVar("T")


@dataclass(frozen=True)
class Sampling:
    """How to pick tokens; requests with equal settings can share one `generate` call."""

    temperature: float = 1.0
    top_p: float | None = None
    top_k: int | None = None

    def group_key(self) -> tuple:
        """Greedy decoding ignores the other knobs, so all greedy requests share one group."""
        if self.temperature == 0:
            return ("greedy",)
        return ("sample", self.temperature, self.top_p, self.top_k)

    def generate_kwargs(self) -> dict:
        """Arguments for `generate`; explicit values override the model's generation_config."""
        if self.temperature == 0:
            return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        # top_k=0 disables transformers' default top-k of 50, which the Messages API lacks.
        return {
            "do_sample": True,
            "temperature": self.temperature,
            "top_p": self.top_p if self.top_p is not None else 1.0,
            "top_k": self.top_k or 0,
        }


@dataclass(frozen=True)
class GenRequest:
    """One prompt, already tokenized, with its limits."""

    input_ids: list[int]
    max_tokens: int
    sampling: Sampling = Sampling(temperature=0.0)
    stop_sequences: tuple[str, ...] = ()
    constraint: JsonConstraint | None = None
    """Generate a forced tool's input under its schema; None generates freely."""
    cache_points: tuple[int, ...] = ()
    """Prompt lengths (in tokens) at its `cache_control` breakpoints."""
    cancel: CancelFlag | None = field(default=None, compare=False)
    """Set once the client is gone: the row stops at the next decode step (truesight.cancel)."""

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


@dataclass(frozen=True)
class GenResult(Finished):
    """A finished reply plus how its prompt tokens were counted (as the Messages API does:
    `input_tokens` excludes the tokens read from and written to the prompt cache)."""

    input_tokens: int = 0
    decode_steps: int = 0
    """Decode steps the row's `generate` call ran (every row of a static batch runs them all)."""
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass
class BatcherStats:
    """Counters for /health."""

    requests_served: int = 0
    """Replies returned (a request whose client left is not served)."""
    batches_run: int = 0
    """`generate` calls made (continuous batching: steps that admitted new rows)."""
    max_batch_seen: int = 0
    decode_steps: int = 0
    """Decode steps run (forward passes over the running rows): the work done, whoever it was
    for."""
    rows_running: int = 0
    """Rows in the running batch now."""
    requests_cancelled: int = 0
    """Requests stopped (or never started) because their client disconnected."""


class _RowLimits(StoppingCriteria):
    """Ends each row at its own max_tokens, so the call stops once every row is done.

    Without it a row whose limit is small runs on until the largest limit of the batch unless
    it hits EOS: a forced tool call (which ends early, at its closing brace) would otherwise
    leave its free neighbours generating to its own, larger limit.
    """

    def __init__(self, prompt_width: int, limits: list[int], device: torch.device):
        self.start = prompt_width
        self.limits = torch.tensor(limits, device=device)

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs
    ) -> torch.BoolTensor:
        return (input_ids.shape[1] - self.start) >= self.limits


def run_group(
    loaded: LoadedModel, requests: list[GenRequest], prefixes: PrefixCache | None = None
) -> list[GenResult]:
    """Run one `generate` for requests that share sampling settings, each row starting from its
    cached prompt prefix when `prefixes` holds one (see `truesight.prefill`).

    Constrained and free requests share the call: the schema mask applies to its own row only.
    """
    tok, model = loaded.tokenizer, loaded.model
    eos = loaded.eos_ids()
    pad = tok.pad_token_id if tok.pad_token_id is not None else min(eos, default=0)
    starts = [
        prepare_row(loaded, prefixes, r.input_ids, r.cache_points)
        if prefixes is not None
        else RowPrefix()
        for r in requests
    ]
    batch = padded_batch(loaded, [r.input_ids for r in requests], starts, pad)
    width = batch.input_ids.shape[1]
    # the server rejects prompts that leave no room
    budget = loaded.context_length - max(len(r.input_ids) for r in requests)
    max_new = max(1, min(max(r.max_tokens for r in requests), budget))
    constraints = [r.constraint for r in requests]
    processors = []
    if any(c is not None for c in constraints):
        processors.append(JsonSchemaProcessor(loaded, constraints))
    stopping = [_RowLimits(width, [r.max_tokens for r in requests], loaded.device)]
    stopping.append(StopCancelled([r.cancel for r in requests], loaded.device))
    cache = {} if batch.cache is None else {"cache": batch.cache}
    with torch.inference_mode():
        out = model.generate(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            max_new_tokens=max_new,
            pad_token_id=pad,
            logits_processor=processors,
            stopping_criteria=StoppingCriteriaList(stopping),
            **cache,
            **requests[0].sampling.generate_kwargs(),
        )
    results = []
    steps = out.shape[1] - width
    rows = out[:, width:].tolist()
    for r, start, row in zip(requests, starts, rows, strict=True):
        done = finish_sequence(
            row,
            max_tokens=r.max_tokens,
            eos_ids=eos,
            stop_sequences=r.stop_sequences,
            decode=lambda ids: tok.decode(ids, skip_special_tokens=True),
        )
        uncached = len(r.input_ids) - start.read - start.written
        results.append(
            GenResult(
                **vars(done),
                input_tokens=uncached,
                decode_steps=steps,
                cache_read_tokens=start.read,
                cache_write_tokens=start.written,
            )
        )
    return results


@dataclass
class Pending:
    """A queued request and the future its result goes to."""

    request: GenRequest
    future: asyncio.Future[GenResult] = field(repr=False)


class Batcher:
    """Collects requests from many coroutines and serves them in batches.

    The queue, the model thread and their plumbing are shared with `ContinuousBatcher`
    (truesight.continuous), which overrides `_loop` and queues richer items (`_item`)."""

    _item: type[Pending] = Pending
    _name = "batcher"

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        max_batch: int = 16,
        window_s: float = 0.005,
        prefixes: PrefixCache | None = None,
    ):
        self.loaded = loaded
        self.prefixes = prefixes
        """The prompt-prefix KV cache; None prefills every prompt whole."""
        self.max_batch = max_batch
        self.window_s = window_s
        self.stats = BatcherStats()
        self._queue: asyncio.Queue[Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        # One thread: torch runs one forward at a time, and the event loop stays free.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")

    async def submit(self, request: GenRequest) -> GenResult:
        """Queue `request` and wait for its result."""
        if self._task is None:  # started lazily, inside the server's running loop
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._loop(), name=self._name)
        future: asyncio.Future[GenResult] = asyncio.get_running_loop().create_future()
        await self._queue.put(self._item(request, future))
        return await future

    def waiting(self) -> int:
        """Requests queued for a later batch."""
        return 0 if self._queue is None else self._queue.qsize()

    async def run_exclusive(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn(*args)` in the model thread, between generate batches, never beside one."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def aclose(self) -> None:
        """Stop the batching loop and fail whatever is still waiting."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            while not self._queue.empty():
                self._queue.get_nowait().future.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _collect(self, limit: int | None = None) -> list[Pending]:
        """The next batch (at most `limit`, default max_batch): the first waiting request plus
        whatever arrives within the window."""
        limit = self.max_batch if limit is None else limit
        batch = [await self._queue.get()]
        deadline = asyncio.get_running_loop().time() + self.window_s
        while len(batch) < limit:
            # Anything already queued joins at once; the window only bounds waiting for more.
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            groups: dict[tuple, list[Pending]] = defaultdict(list)
            for pending in await self._collect():
                if pending.request.cancelled() and not pending.future.done():
                    self.stats.requests_cancelled += 1
                    pending.future.set_exception(ClientGone())
                elif not pending.future.done():  # the client may have gone away
                    groups[pending.request.sampling.group_key()].append(pending)
            for group in groups.values():
                requests = [p.request for p in group]
                self.stats.rows_running = len(requests)
                try:
                    results = await loop.run_in_executor(
                        self._executor, run_group, self.loaded, requests, self.prefixes
                    )
                except Exception as exc:  # goes back to each caller as its own error
                    for p in group:
                        if not p.future.done():
                            p.future.set_exception(exc)
                    continue
                finally:
                    self.stats.rows_running = 0
                self.stats.batches_run += 1
                self.stats.decode_steps += results[0].decode_steps
                gone = sum(r.cancelled() for r in requests)
                self.stats.requests_cancelled += gone
                self.stats.requests_served += len(group) - gone
                self.stats.max_batch_seen = max(self.stats.max_batch_seen, len(group))
                for p, result in zip(group, results, strict=True):
                    if p.future.done():
                        continue
                    if p.request.cancelled():
                        p.future.set_exception(ClientGone())
                    else:
                        p.future.set_result(result)
