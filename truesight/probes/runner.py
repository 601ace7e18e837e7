"""Run one probe request: validate, answer from the cache where possible, compute the rest.

Everything here runs in the worker's single model thread (see app.py), so it never overlaps
another forward pass.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from truesight.model import LoadedModel
from truesight.probes.batch import ProbeStats
from truesight.probes.cache import ResultCache, model_identity, result_key
from truesight.probes.inputs import ProbeInput
from truesight.probes.registry import Probe
from truesight.wire import InvalidRequest, describe_errors


def parse_params(probe: Probe, raw: dict[str, Any]) -> BaseModel:
    """Validated parameters, or a 400 that says which field is wrong."""
    try:
        return probe.params.model_validate(raw)
    except ValidationError as e:
        problems = describe_errors(e.errors(), under="params")
        raise InvalidRequest(f"invalid params for probe {probe.name!r}: {problems}") from e


class ProbeRunner:
    """Holds what probe requests share: the model, its cache identity, the cache and counters."""

    def __init__(self, loaded: LoadedModel, cache: ResultCache | None = None):
        self.loaded = loaded
        self.cache = cache
        self.stats = ProbeStats()
        self._identity: str | None = None

    @property
    def identity(self) -> str:
        if self._identity is None:  # a pass over the weights: only once, and only if needed
            self._identity = model_identity(self.loaded)
        return self._identity

    def keys(self, probe: Probe, params: BaseModel, items: list[ProbeInput]) -> list[str]:
        """Each item's result-cache key: the same whichever endpoint computed the result."""
        canonical = params.model_dump(mode="json")
        if probe.cache_salt is not None:
            canonical = {"params": canonical, "salt": probe.cache_salt(params)}
        return [
            result_key(self.identity, probe.name, probe.version, canonical, i.text, i.context)
            for i in items
        ]

    def run(
        self,
        probe: Probe,
        items: list[ProbeInput],
        raw_params: dict[str, Any],
        *,
        use_cache: bool = True,
    ) -> list[dict[str, Any]]:
        """One result (as JSON-ready dict) per item, in order; InvalidRequest if unusable."""
        (outcome,) = self.run_many(probe, [items], raw_params, use_cache=use_cache)
        if isinstance(outcome, InvalidRequest):
            raise outcome
        return outcome

    def run_many(
        self,
        probe: Probe,
        requests: list[list[ProbeInput]],
        raw_params: dict[str, Any],
        *,
        use_cache: bool = True,
    ) -> list[list[dict[str, Any]] | InvalidRequest]:
        """Several requests with the same probe and parameters, computed as one batch.

        Each request gets its results in order, or the InvalidRequest that its own inputs caused:
        one client's over-long text never fails another client's request.
        """
        try:
            params = parse_params(probe, raw_params)
        except InvalidRequest as e:
            return [e] * len(requests)
        outcomes: list[list[dict[str, Any]] | InvalidRequest] = []
        items: list[ProbeInput] = []
        prepared: list[Any] = []
        owner: list[int] = []
        for r, request in enumerate(requests):
            try:
                mine = probe.prepare(self.loaded, request, params)  # length errors before work
            except InvalidRequest as e:
                outcomes.append(e)
                continue
            outcomes.append([])
            items += request
            prepared += mine
            owner += [r] * len(request)
        results = self._compute(probe, items, prepared, params, use_cache)
        for r, result in zip(owner, results, strict=True):
            outcomes[r].append(result)  # type: ignore[union-attr]
        return outcomes

    def _compute(
        self,
        probe: Probe,
        items: list[ProbeInput],
        prepared: list[Any],
        params: BaseModel,
        use_cache: bool,
    ) -> list[dict[str, Any]]:
        cache = self.cache if use_cache else None
        results: list[dict[str, Any] | None] = [None] * len(items)
        keys: list[str] = []
        if cache is not None and items:
            keys = self.keys(probe, params, items)
            found = cache.get_many(keys)
            for n, key in enumerate(keys):
                if key in found:
                    results[n] = json.loads(found[key])
            self.stats.cache_hits += len(items) - results.count(None)
        todo = [n for n, r in enumerate(results) if r is None]
        if todo:
            computed = probe.compute(self.loaded, [prepared[n] for n in todo], params, self.stats)
            self.stats.texts_computed += len(todo)
            fresh = {}
            for n, result in zip(todo, computed, strict=True):
                results[n] = result.model_dump(mode="json")
                if cache is not None:
                    fresh[keys[n]] = json.dumps(results[n])
            if fresh:
                cache.put_many(fresh)
        return results  # type: ignore[return-value]
