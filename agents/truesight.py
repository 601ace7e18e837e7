"""Truesight readouts from the local worker: the HTTP client, and the tool agents call.

The worker (package `truesight`, its own process) serves `POST /v1/probes/{name}`; this module is
the only place that talks to it about probes. Agents get a `truesight` tool whose result is small
and carries a probe-result id, so a verdict can cite the readout it relied on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import httpx

from agents.prompts import say
from agents.shards import gather, split
from agents.tools import Handler, Tool, ToolInputError

PROBES = ("surprisal", "author", "followup", "linear")
"""What the agent tool offers; `linear` applies each of the run's trained probes."""
TRAINED = ("linear", "tokens")


def readout(probe: str, trained: str | None = None) -> str:
    """The name a readout is stored under: the probe, or `linear:<trained probe>`."""
    return f"{probe}:{trained}" if trained else probe


def worker_probe_name(
    name: str,
    data_sha256: str,
    variant: str,
    layer: int | None,
    c: float,
    control_sha256: str | None,
) -> str:
    """The trained probe's name on the worker: the protocol's name plus a digest of everything
    it is trained from, so two protocols (or two versions of one) never overwrite each other."""
    spec = json.dumps([data_sha256, variant, layer, c, control_sha256])
    return f"{name}-{hashlib.sha256(spec.encode()).hexdigest()[:10]}"


class WorkerError(Exception):
    """The worker refused a probe request (4xx) or could not be reached."""

    def __init__(self, status: int, message: str):
        self.status, self.message = status, message
        super().__init__(f"worker answered {status}: {message}")


@dataclass(frozen=True)
class ProbeResponse:
    model: str
    results: list[dict[str, Any]]


@dataclass(frozen=True)
class ReadoutSpec:
    """One probe of a fused readout request, stored under `name`."""

    name: str
    probe: str
    params: dict[str, Any]
    context: bool = True
    """Read the text after its context; False: the text alone."""

    def body(self) -> dict[str, Any]:
        return {"name": self.name, "probe": self.probe, "params": self.params} | {
            "context": self.context
        }


@dataclass(frozen=True)
class ReadoutsResponse:
    model: str
    results: list[dict[str, dict[str, Any]]]
    """Per text, by spec name: {"result": ... or None, "error": None or why}."""


class WorkersDisagree(Exception):
    """Workers that must agree did not: each trained the same probe to other weights."""

    def __init__(self, name: str, shas: dict[str, str]):
        self.name, self.shas = name, shas
        listed = ", ".join(f"{url} {sha[:12]}" for url, sha in shas.items())
        super().__init__(f"the workers trained probe {name} to different weights ({listed})")


class TruesightClient:
    """Synchronous client for the probe endpoints of one worker, or of several: then each text
    is read by one of them, picked by the text (agents.shards), and probes train on all."""

    def __init__(
        self, base_url: str | Sequence[str], token: str | None = None, timeout_s: float = 900.0
    ):
        headers = {"x-api-key": token} if token else {}
        self.urls = [base_url] if isinstance(base_url, str) else list(base_url)
        self._workers = [
            httpx.Client(base_url=url, headers=headers, timeout=timeout_s) for url in self.urls
        ]

    def close(self) -> None:
        for http in self._workers:
            http.close()

    def catalogue(self) -> dict[str, Any]:
        return self._check(self._workers[0].get("/v1/probes"))

    def run(
        self,
        probe: str,
        texts: list[str],
        contexts: list[str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> ProbeResponse:
        body = {"params": params or {}}
        model, results = self._sharded(f"/v1/probes/{probe}", body, texts, contexts)
        return ProbeResponse(model, results)

    def readouts(
        self,
        texts: list[str],
        probes: list[ReadoutSpec],
        contexts: list[str] | None = None,
    ) -> ReadoutsResponse:
        """Every probe on each text, the worker reading each text once (POST /v1/readouts)."""
        body = {"probes": [p.body() for p in probes]}
        model, results = self._sharded("/v1/readouts", body, texts, contexts)
        return ReadoutsResponse(model, results)

    def _sharded(
        self, path: str, body: dict[str, Any], texts: list[str], contexts: list[str] | None
    ) -> tuple[str, list[Any]]:
        """The model and each text's result, each text read by its own worker."""
        groups = split(texts, len(self._workers))
        asked = [(w, ks) for w, ks in enumerate(groups) if ks]
        if not asked or (contexts is not None and len(contexts) != len(texts)):
            # nothing to split, or a request the first worker refuses with the reason
            asked = [(0, list(range(len(texts))))]

        def post(worker: int, ks: list[int]) -> dict[str, Any]:
            part = body | {"texts": [texts[k] for k in ks]}
            if contexts is not None:
                part["contexts"] = [contexts[k] for k in ks] if len(asked) > 1 else contexts
            return self._check(self._workers[worker].post(path, json=part))

        replies = gather([partial(post, w, ks) for w, ks in asked])
        results: list[Any] = [None] * len(texts)
        for (_, ks), data in zip(asked, replies, strict=True):
            for k, result in zip(ks, data["results"], strict=True):
                results[k] = result
        return replies[0]["model"], results

    def train(
        self,
        name: str,
        dataset: str,
        *,
        source: str,
        variant: str = "as_written",
        layer: int | None = None,
        c: float = 1.0,
        control: str | None = None,
        transfer: str | None = None,
        transfer_source: str = "transfer.jsonl",
        random_seed: int | None = None,
    ) -> dict[str, Any]:
        """Have the worker train (or find, if identical) a linear probe on its model; with a
        `transfer` set or a `random_seed`, also its controls (see truesight.validity).

        Returns {"probe": probe.json, "trained": bool, "seconds": float, "validity": ...}.
        """
        body = {"name": name, "dataset": dataset, "source": source, "variant": variant}
        body |= {"layer": layer, "c": c, "control": control, "random_seed": random_seed}
        if transfer is not None:
            body |= {"transfer": transfer, "transfer_source": transfer_source}
        # every worker reads some texts, so every worker needs the probe, and the same one
        replies = gather(
            [partial(self._post, http, "/v1/trained-probes", body) for http in self._workers]
        )
        shas = {
            url: r["probe"]["weights_sha256"] for url, r in zip(self.urls, replies, strict=True)
        }
        if len(set(shas.values())) > 1:
            raise WorkersDisagree(name, shas)
        trained = any(r["trained"] for r in replies)
        return replies[0] | {"trained": trained, "seconds": max(r["seconds"] for r in replies)}

    def _post(self, http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._check(http.post(path, json=body))

    @staticmethod
    def _check(r: httpx.Response) -> dict[str, Any]:
        if r.status_code >= 400:
            try:
                message = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = r.text[:500]
            raise WorkerError(r.status_code, message)
        return r.json()


def text_sha256(text: str, context: str | None = None) -> str:
    return hashlib.sha256(json.dumps([context, text]).encode()).hexdigest()


def compact(probe: str, result: dict[str, Any]) -> dict[str, Any]:
    """The part of a readout worth an agent's context: headline numbers, a few spans."""
    if probe == "surprisal":
        spans = [
            {"text": s["text"], "surprisal": round(s["surprisal"], 2)}
            for s in result.get("top_spans", [])[:3]
        ]
        keys = ("mean_nll", "p90", "max")
        return {**{k: round(result[k], 3) for k in keys if k in result}, "top_spans": spans}
    if probe == "author":
        return {k: round(v, 3) for k, v in result.get("attributes", {}).items()}
    if probe == "followup":
        return {k: round(v, 3) for k, v in result.get("questions", {}).items()}
    if probe == "linear":
        out = {k: round(result[k], 3) for k in ("score", "probability") if k in result}
        return {**out, "above_threshold": result.get("above_threshold")}
    if probe == "tokens":
        top = sorted(result.get("tokens", []), key=lambda t: -t["score"])[:5]
        return {"top_tokens": [{"text": t["text"], "score": round(t["score"], 2)} for t in top]}
    return result


@dataclass(frozen=True)
class ProbeReadout:
    """One probe readout to keep, or why there is none (`result` None, `error` set)."""

    item_id: str | None
    """None for a text an agent wrote itself rather than a subject's response."""
    probe: str
    """The name it is stored under (see `readout`)."""
    model: str
    params: dict[str, Any]
    text_sha256: str
    result: dict[str, Any] | None
    error: str | None = None
    source: str = "stage"
    """Who asked: the probe stage (`stage`) or an agent's tool (`agent`)."""


class ProbeResultSink(Protocol):
    """Where readouts are kept so verdicts can cite them; the records store implements it. (Not
    the worker's `truesight.probes.linear.ProbeStore`, which keeps trained probes.)"""

    def add_probe_result(self, readout: ProbeReadout) -> int: ...


TRUESIGHT = "truesight"
"""The tool's name."""


def truesight_tool(handler: Handler, offered: list[str]) -> Tool:
    """The `truesight` tool an agent sees, run by `handler` (a `TruesightTool`, or one that
    checks something first), offering exactly the probes it can serve (`TruesightTool.offered`):
    the trained ones only when the run trained some."""

    def text(macro: str, **kw: Any) -> str:
        return say("tools/truesight.j2", macro, **kw)

    probes = {"type": "string", "enum": offered}
    properties = {
        "response_id": {"type": "string", "description": text("response_id")},
        "text": {"type": "string", "description": text("text")},
        "probes": {"type": "array", "items": probes, "description": text("probes")},
    }
    schema = {"type": "object", "properties": properties}
    return Tool(TRUESIGHT, text("description", linear="linear" in offered), schema, handler)


class TruesightTool:
    """Runs the `truesight` tool for an agent: resolve the text, probe it, store, summarise."""

    def __init__(
        self,
        client: TruesightClient,
        store: ProbeResultSink,
        responses: dict[str, tuple[str | None, str]],
        params: dict[str, dict[str, Any]] | None = None,
        trained: dict[str, str] | None = None,
    ):
        """`responses` maps the refs an agent sees to (item id, response text); `trained` maps
        the run's trained probes to their names on the worker (see `worker_probe_name`)."""
        self.client, self.store, self.responses = client, store, responses
        self.params = params or {}
        self.trained = trained or {}

    @property
    def offered(self) -> list[str]:
        """The probes this tool serves: the trained ones only with the run's trained probes."""
        return [p for p in PROBES if p not in TRAINED or self.trained]

    def __call__(self, tool_input: dict[str, Any]) -> dict[str, Any]:
        ref, text = tool_input.get("response_id"), tool_input.get("text")
        if (ref is None) == (text is None):
            raise ToolInputError(say("tools/truesight.j2", "one_of_two"))
        item_id = None
        if ref is not None:
            if ref not in self.responses:
                raise ToolInputError(say("tools/truesight.j2", "unknown_ref", ref=repr(ref)))
            item_id, text = self.responses[ref]
        offered = self.offered
        probes = tool_input.get("probes") or offered
        unknown = [p for p in probes if p not in offered]
        if unknown:
            raise ToolInputError(
                say(
                    "tools/truesight.j2",
                    "unknown_probes",
                    unknown=repr(unknown),
                    offered=repr(offered),
                )
            )
        runs = [
            (readout(probe, name), probe, {"probe": worker})
            for probe in probes
            for name, worker in (self.trained.items() if probe in TRAINED else [(None, None)])
        ]
        out: dict[str, Any] = {}
        for name, probe, trained_params in runs:
            params = trained_params if probe in TRAINED else self.params.get(probe, {})
            try:
                response = self.client.run(probe, [text], params=params)
            except WorkerError as e:
                refused = say("tools/truesight.j2", "worker_refused", error=e)
                raise ToolInputError(refused) from e
            result = response.results[0]
            sha = text_sha256(text)
            kept = ProbeReadout(item_id, name, response.model, params, sha, result, source="agent")
            pid = self.store.add_probe_result(kept)
            out[name] = {"probe_result_id": pid, **compact(probe, result)}
            out["model"] = response.model
        return out
