"""Spreading probe requests over several workers by text.

A stable hash of a text (sha256, not Python's salted `hash()`) picks its worker, so a text
always goes to the same one: its result cache stays useful, and a resumed run asks the worker
that read the text before. The per-worker requests of one batch run at once, in threads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def shard_of(text: str, n: int) -> int:
    """The worker (0 … n-1) that reads `text`."""
    digest = hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % n


def split(texts: Sequence[str], n: int) -> list[list[int]]:
    """For each of `n` workers, the positions of the texts it reads, in order."""
    groups: list[list[int]] = [[] for _ in range(n)]
    for k, text in enumerate(texts):
        groups[shard_of(text, n)].append(k)
    return groups


def gather(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Each call's result, in order, the calls made at once; the first failure is raised (after
    every call has ended, so no request is left running behind the error)."""
    if len(calls) == 1:
        return [calls[0]()]
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
    return [f.result() for f in futures]
