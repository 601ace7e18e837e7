"""Truesight readouts: fused worker vs per-probe worker vs a naive transformers loop.

    RESEARCH_CACHE_DIR=~/.cache/research .venv/bin/python bench/truesight.py [--n 400]
        [--model smollm2] [--clients 8] [--per-request 1] [--context-tokens 0]

N responses of about 300 tokens (the DEU task documents, cycled and varied; with
--context-tokens K each gets a K-token prompt context, read but not scored) are read with five
probes: surprisal, author (4 attribute pairs, calibrated), followup (one question) and two
trained linear probes at different layers. The linear probes are the trained probes found in
CACHE_DIR/probes (copied, two with distinct layers), else two trained here on
protocols/data/instructed_pairs.jsonl at half and three quarters of the depth (time not counted).
  (a) naive: one text at a time, `output_hidden_states=True` and a full log_softmax for
      surprisal and both linear probes, then one forward of text + suffix per author suffix and
      follow-up question and one for the calibration text — what one writes first;
  (b) per-probe worker: `python -m truesight` (cache off), one POST /v1/probes/{name} per probe
      and chunk, under C concurrent clients (the worker merges concurrent requests);
  (c) fused worker: the same worker, one POST /v1/readouts per chunk carrying all five probes.
Prints one table: seconds, texts/s, speed-up, and tokens forwarded per token read (context +
text), from the worker's /health counters (the naive loop's are counted from its inputs).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import httpx
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.worker import running_worker  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402
from truesight.model import load_model  # noqa: E402
from truesight.probes.author import DEFAULT_PAIRS, LEXICON  # noqa: E402
from truesight.probes.followup import TEMPLATE, FollowupParams  # noqa: E402

SUFFIX = "\n\nThe author of the text above is"
QUESTION = TEMPLATE.format(q=FollowupParams().questions[0])


def texts(n: int, context_tokens: int, tokenizer) -> tuple[list[str], list[str]]:  # noqa: ANN001
    data = yaml.safe_load((ROOT / "protocols" / "deu.yaml").read_text())
    docs = [t["document"] for t in data["materials"]["tasks"]]
    out, contexts = [], []
    for i in range(n):
        ids = tokenizer(f"Reply {i}. " + docs[i % len(docs)])["input_ids"][:300]
        out.append(tokenizer.decode(ids))
        prompt = tokenizer(f"Prompt {i}. " + docs[(i + 1) % len(docs)] * 4)["input_ids"]
        contexts.append(tokenizer.decode(prompt[:context_tokens]) if context_tokens else "")
    return out, contexts


@torch.inference_mode()
def naive(loaded, batch: list[str], contexts: list[str], layers: list[int]) -> tuple[float, int]:  # noqa: ANN001
    """(seconds, tokens forwarded)."""
    model, tok = loaded.model, loaded.tokenizer
    first = {w: tok(w)["input_ids"][0] for pair in DEFAULT_PAIRS for w in _words(pair)}
    directions = [torch.randn(model.config.hidden_size) for _ in layers]  # cost, not weights
    yes, no = tok(" Yes")["input_ids"][0], tok(" No")["input_ids"][0]
    forwarded, started = 0, time.perf_counter()
    for text, context in zip(batch, contexts, strict=True):
        ids = torch.tensor([tok(context + text)["input_ids"]])
        out = model(ids, output_hidden_states=True)
        logp = torch.log_softmax(out.logits[0, :-1], dim=-1)
        logp.gather(1, ids[0, 1:, None]).neg().mean()
        for layer, direction in zip(layers, directions, strict=True):
            float(out.hidden_states[layer][0].mean(0) @ direction)
        forwarded += ids.shape[1]
        for probe_text in (context + text + SUFFIX, "N/A" + SUFFIX, context + text + QUESTION):
            s_ids = torch.tensor([tok(probe_text)["input_ids"]])
            last = torch.log_softmax(model(s_ids).logits[0, -1], -1)
            forwarded += s_ids.shape[1]
            if probe_text.endswith(QUESTION):
                float(last[yes] - last[no])
                continue
            for pair in DEFAULT_PAIRS:
                pos, neg = (LEXICON[n] for n in pair.split("_vs_"))
                torch.logsumexp(last[[first[w] for w in pos]], 0) - torch.logsumexp(
                    last[[first[w] for w in neg]], 0
                )
    return time.perf_counter() - started, forwarded


def _words(pair: str) -> list[str]:
    return [w for name in pair.split("_vs_") for w in LEXICON[name]]


def linear_probes(url: str, depth: int) -> list[str]:
    """Two trained probes at distinct layers: copied ones if there are, else trained now."""
    listed = httpx.get(f"{url}/v1/probes", timeout=60).json()["trained_probes"]
    by_layer = {p["layer"]: p["name"] for p in listed if p["matches_model"]}
    if len(by_layer) >= 2:
        return [by_layer[k] for k in sorted(by_layer)[:2]]
    data = (ROOT / "protocols" / "data" / "instructed_pairs.jsonl").read_text()
    names = []
    for name, share in (("bench-mid", 0.5), ("bench-top", 0.75)):
        body = {"name": name, "dataset": data, "layer": int(share * depth)}
        httpx.post(f"{url}/v1/trained-probes", json=body, timeout=3600).raise_for_status()
        names.append(name)
    return names


def specs(trained: list[str]) -> list[dict]:
    linear = [{"probe": "linear", "params": {"probe": t}, "name": f"linear:{t}"} for t in trained]
    return [{"probe": "surprisal"}, {"probe": "author"}, {"probe": "followup"}, *linear]


def serve(
    url: str,
    batch: list[str],
    contexts: list[str],
    probes: list[dict],
    *,
    fused: bool,
    clients: int,
    per_request: int,
) -> tuple[float, dict]:
    """(seconds, /health counters' change) for reading every text with every probe."""
    spans = [slice(i, i + per_request) for i in range(0, len(batch), per_request)]
    if fused:
        jobs = [("/v1/readouts", {"probes": probes}, s) for s in spans]
    else:
        jobs = [
            (f"/v1/probes/{p['probe']}", {"params": p.get("params", {})}, s)
            for s in spans
            for p in probes
        ]
    jobs.reverse()  # popped from the end: text by text, as agents would ask
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=3600) as http:
            while True:
                with lock:
                    if not jobs:
                        return
                    path, body, span = jobs.pop()
                body = body | {"texts": batch[span], "contexts": contexts[span]}
                http.post(path, json=body).raise_for_status()

    before = httpx.get(f"{url}/health", timeout=10).json()
    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    after = httpx.get(f"{url}/health", timeout=10).json()
    return elapsed, {k: after[k] - before[k] for k in after if isinstance(after[k], int)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--per-request", type=int, default=1)
    ap.add_argument("--context-tokens", type=int, default=0)
    args = ap.parse_args()
    cache_dir = Settings.from_env().cache_dir
    loaded = load_model(args.model, device="cpu", cache_dir=cache_dir)
    depth = loaded.model.config.num_hidden_layers
    batch, contexts = texts(args.n, args.context_tokens, loaded.tokenizer)
    read = sum(
        len(loaded.tokenizer(c + t)["input_ids"]) for c, t in zip(contexts, batch, strict=True)
    )
    with running_worker(args.model, probes_from=cache_dir / "probes") as url:
        trained = linear_probes(url, depth)
        listed = httpx.get(f"{url}/v1/probes", timeout=60).json()["trained_probes"]
        layers = sorted(p["layer"] for p in listed if p["name"] in trained)
        probes = specs(trained)
        kw = {"clients": args.clients, "per_request": args.per_request}
        serve(url, batch[:2], contexts[:2], probes, fused=True, **kw)  # warm up, load probes
        t_probe, per_probe = serve(url, batch, contexts, probes, fused=False, **kw)
        t_fused, fused = serve(url, batch, contexts, probes, fused=True, **kw)
    t_naive, naive_tokens = naive(loaded, batch, contexts, layers)
    probes_read = f"surprisal + author (4 pairs) + followup + linear at layers {layers}/{depth}"
    load = f"{args.clients} clients x {args.per_request} text(s) per request"
    what = f"{read} tokens read (context {args.context_tokens} + text)"
    print(f"{args.n} texts, {what}; {probes_read}; {load}")
    head = "| reader | seconds | texts/s | × naive | × per-probe | forward passes "
    print(head + "| tokens forwarded / token read |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    rows = (
        ("naive loop", t_naive, None, naive_tokens),
        (
            "worker, per-probe requests",
            t_probe,
            per_probe["probe_forward_passes"],
            per_probe["probe_tokens_forwarded"],
        ),
        (
            "worker, fused /v1/readouts",
            t_fused,
            fused["probe_forward_passes"],
            fused["probe_tokens_forwarded"],
        ),
    )
    for name, t, passes, tokens in rows:
        shown = "—" if passes is None else str(passes)
        print(
            f"| {name} | {t:.1f} | {args.n / t:.2f} | {t_naive / t:.2f} | {t_probe / t:.2f} "
            f"| {shown} | {tokens / read:.2f} |"
        )


if __name__ == "__main__":
    main()
