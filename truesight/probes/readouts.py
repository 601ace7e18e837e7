"""Run a fused readout request: every probe on every text, one forward pass per token sequence.

Each (probe, text) readout is first looked up in the result cache under the same key as a
single-probe request would use, so either endpoint's results serve the other. The rest are
planned: each probe names the token sequence it reads (the text after its context, or the text
alone for a probe asked to ignore the context) and what it needs of it; needs on the same
sequence are united and `fused.read_all` runs each distinct sequence once. A text that one probe
cannot read (too long for its suffix, say) gets that readout's error and every other readout.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from truesight.probes.fused import Calibration, Needs, TextPass, read_all
from truesight.probes.inputs import ProbeInput
from truesight.probes.registry import Probe
from truesight.probes.runner import ProbeRunner, parse_params
from truesight.probes.wire import Readout, ReadoutSpec
from truesight.wire import InvalidRequest

TextReadouts = dict[str, dict[str, Any]]
"""One text's readouts: each probe's Readout (as JSON) by its name."""


@dataclass(frozen=True)
class _Spec:
    key: str
    probe: Probe
    params: BaseModel
    context: bool


@dataclass
class _Todo:
    """One readout to compute: spec s on text t."""

    s: int
    t: int
    item: Any
    seq: tuple[int, ...]
    needs: Needs


def _resolve(registry: dict[str, Probe], specs: list[ReadoutSpec]) -> list[_Spec]:
    out, seen = [], set()
    for k, spec in enumerate(specs):
        probe = registry.get(spec.probe)
        if probe is None:
            raise InvalidRequest(
                f"probes[{k}].probe: unknown probe {spec.probe!r}; available: {', '.join(registry)}"
            )
        if probe.plan is None or probe.read is None:
            raise InvalidRequest(f"probes[{k}].probe: {spec.probe!r} cannot share a forward pass")
        if spec.key in seen:
            raise InvalidRequest(
                f"probes[{k}]: the name {spec.key!r} is used twice; give each a distinct `name`"
            )
        seen.add(spec.key)
        try:
            params = parse_params(probe, spec.params)
        except InvalidRequest as e:
            raise InvalidRequest(f"probes[{k}]: {e}") from e
        out.append(_Spec(spec.key, probe, params, spec.context))
    return out


def _for_text(message: str, t: int) -> str:
    """A message about `texts[0]` (from preparing one text alone) said of texts[t]."""
    return re.sub(r"^texts\[0\]", f"texts[{t}]", message)


class Readouts:
    """Fused readouts over a ProbeRunner's model, cache and counters."""

    def __init__(self, runner: ProbeRunner, registry: dict[str, Probe]):
        self.runner, self.registry = runner, registry
        self.calibration = Calibration()

    def run(
        self, specs: list[ReadoutSpec], items: list[ProbeInput], *, use_cache: bool = True
    ) -> list[TextReadouts]:
        """One dict of readouts per item, in order; InvalidRequest for an unusable request."""
        (outcome,) = self.run_many(specs, [items], use_cache=use_cache)
        if isinstance(outcome, InvalidRequest):
            raise outcome
        return outcome

    def run_many(
        self,
        specs: list[ReadoutSpec],
        requests: list[list[ProbeInput]],
        *,
        use_cache: bool = True,
    ) -> list[list[TextReadouts] | InvalidRequest]:
        """Several requests with the same probes, computed together (each text still once)."""
        try:
            resolved = _resolve(self.registry, specs)
        except InvalidRequest as e:
            return [e] * len(requests)
        items = [item for request in requests for item in request]
        try:
            readouts = self._compute(resolved, items, use_cache)
        except InvalidRequest as e:
            return [e] * len(requests)
        out: list[list[TextReadouts] | InvalidRequest] = []
        at = 0
        for request in requests:
            out.append(readouts[at : at + len(request)])
            at += len(request)
        return out

    def _compute(self, specs: list[_Spec], items: list[ProbeInput], use_cache: bool):
        runner, loaded = self.runner, self.runner.loaded
        cache = runner.cache if use_cache else None
        table: list[dict[str, Readout]] = [{} for _ in items]
        todo: list[_Todo] = []
        fresh_keys: dict[tuple[int, int], str] = {}
        for s, spec in enumerate(specs):
            mine = [i if spec.context else ProbeInput(i.text) for i in items]
            keys = runner.keys(spec.probe, spec.params, mine) if cache is not None else []
            found = cache.get_many(keys) if cache is not None else {}
            prepared = self._prepare(spec, mine)
            for t, item in enumerate(prepared):
                if cache is not None and keys[t] in found:
                    table[t][spec.key] = Readout(result=json.loads(found[keys[t]]))
                    runner.stats.cache_hits += 1
                elif isinstance(item, InvalidRequest):
                    table[t][spec.key] = Readout(error=_for_text(str(item), t))
                else:
                    seq, needs = spec.probe.plan(loaded, item, spec.params)
                    todo.append(_Todo(s, t, item, tuple(seq), needs))
                    if cache is not None:
                        fresh_keys[s, t] = keys[t]
        passes = self._forward(todo)
        fresh = {}
        for job in todo:
            spec = specs[job.s]
            result = spec.probe.read(loaded, job.item, passes[job.seq], spec.params, self._calib)
            dumped = result.model_dump(mode="json")
            table[job.t][spec.key] = Readout(result=dumped)
            if (job.s, job.t) in fresh_keys:
                fresh[fresh_keys[job.s, job.t]] = json.dumps(dumped)
        runner.stats.texts_computed += len(passes)  # sequences read, whatever the probes
        if fresh and cache is not None:
            cache.put_many(fresh)
        return [
            {spec.key: row[spec.key].model_dump(mode="json") for spec in specs} for row in table
        ]

    def _prepare(self, spec: _Spec, items: list[ProbeInput]) -> list[Any]:
        """Each item prepared, or the InvalidRequest that it alone causes; a request-wide
        problem (a parameter no text can satisfy) is raised."""
        loaded = self.runner.loaded
        try:
            return spec.probe.prepare(loaded, items, spec.params)
        except InvalidRequest as e:
            if not str(e).startswith("texts["):
                raise InvalidRequest(f"probe {spec.key!r}: {e}") from e
        out: list[Any] = []
        for item in items:
            try:
                (one,) = spec.probe.prepare(loaded, [item], spec.params)
                out.append(one)
            except InvalidRequest as e:
                out.append(e)
        return out

    def _forward(self, todo: list[_Todo]) -> dict[tuple[int, ...], TextPass]:
        """One pass per distinct sequence, with the united needs of the probes reading it."""
        united: dict[tuple[int, ...], Needs] = {}
        for job in todo:
            united[job.seq] = united[job.seq] | job.needs if job.seq in united else job.needs
        seqs = list(united)
        passes = read_all(
            self.runner.loaded, [list(s) for s in seqs], list(united.values()), self.runner.stats
        )
        return dict(zip(seqs, passes, strict=True))

    def _calib(self, seq: list[int], needs: Needs) -> TextPass:
        return self.calibration.read(self.runner.loaded, seq, needs, self.runner.stats)
