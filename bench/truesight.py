"""Truesight probe throughput: a naive transformers loop vs the worker vs the roofline.

    RESEARCH_CACHE_DIR=~/.cache/research .venv/bin/python bench/truesight.py [--n 400]
        [--model smollm2] [--clients 8] [--per-request 1] [--layer 0.75]

N responses of about 300 tokens (the DEU task documents, cycled and varied) are read with
surprisal, author (4 attribute pairs, calibrated) and a linear probe at --layer (a deception
probe trained on protocols/data/instructed_pairs.jsonl; training time is reported apart):
  (a) naive: one text at a time with `output_hidden_states=True` and a full log_softmax, one
      forward per suffix and per calibration text, the linear probe on the surprisal forward's
      hidden states — what one writes first;
  (b) worker: `python -m truesight` (cache off) under C concurrent clients, each request
      carrying --per-request texts (1: agents asking about one response each; the worker merges
      concurrent requests into batches);
  (c) roofline: measured fp32 matmul FLOP/s on this machine / (2 × parameters) tokens per second.
Prints one table: tokens/s for each, and the worker's share of the roofline. Work counts the
text's tokens once for surprisal, once for author and `layer share` of once for linear.
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

SUFFIX = "\n\nThe author of the text above is"
PAIRS = {
    "sincere_vs_insincere": ([" sincere", " genuine"], [" insincere", " fake"]),
    "honest_vs_deceptive": ([" honest", " truthful"], [" deceptive", " lying"]),
    "calm_vs_anxious": ([" calm", " relaxed"], [" anxious", " nervous"]),
    "human_vs_ai": ([" human", " person"], [" AI", " machine"]),
}


def texts(n: int, tokenizer) -> list[str]:  # noqa: ANN001
    data = yaml.safe_load((ROOT / "protocols" / "deu.yaml").read_text())
    docs = [t["document"] for t in data["materials"]["tasks"]]
    out = []
    for i in range(n):
        ids = tokenizer(f"Reply {i}. " + docs[i % len(docs)])["input_ids"][:300]
        out.append(tokenizer.decode(ids))
    return out


def roofline(params: int) -> tuple[float, float]:
    """Best of 5 timings of a 2048² fp32 matmul: the machine's attainable FLOP/s."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.matmul(a, b)
    best = 0.0
    for _ in range(5):
        reps, t = 10, time.perf_counter()
        for _ in range(reps):
            torch.matmul(a, b)
        best = max(best, 2 * 2048**3 * reps / (time.perf_counter() - t))
    return best, best / (2 * params)


@torch.inference_mode()
def naive(loaded, batch: list[str], layer: int) -> float:  # noqa: ANN001
    model, tok = loaded.model, loaded.tokenizer
    first = {w: tok(w)["input_ids"][0] for pos, neg in PAIRS.values() for w in pos + neg}
    direction = torch.randn(model.config.hidden_size)  # the cost of a probe, not its weights
    started = time.perf_counter()
    for text in batch:
        ids = torch.tensor([tok(text)["input_ids"]])
        out = model(ids, output_hidden_states=True)
        logp = torch.log_softmax(out.logits[0, :-1], dim=-1)
        logp.gather(1, ids[0, 1:, None]).neg().mean()
        float(out.hidden_states[layer][0].mean(0) @ direction)
        for probe_text in (text, "N/A"):
            s_ids = torch.tensor([tok(probe_text + SUFFIX)["input_ids"]])
            last = torch.log_softmax(model(s_ids, output_hidden_states=True).logits[0, -1], -1)
            for pos, neg in PAIRS.values():
                torch.logsumexp(last[[first[w] for w in pos]], 0) - torch.logsumexp(
                    last[[first[w] for w in neg]], 0
                )
    return time.perf_counter() - started


def worker(
    model: str, batch: list[str], clients: int, per_request: int, layer: float
) -> tuple[float, float]:
    """(seconds for the readouts, seconds to train the linear probe first)."""
    with running_worker(model) as url:
        data = ROOT / "protocols" / "data" / "instructed_pairs.jsonl"
        body = {"name": "bench", "dataset": data.read_text(), "layer": layer}
        t_train = time.perf_counter()
        httpx.post(f"{url}/v1/trained-probes", json=body, timeout=3600).raise_for_status()
        t_train = time.perf_counter() - t_train
        chunks = [batch[i : i + per_request] for i in range(0, len(batch), per_request)]
        jobs = [(p, c) for c in chunks for p in ("surprisal", "author", "linear")]
        jobs.reverse()  # popped from the end: text by text, as agents would ask
        lock = threading.Lock()

        def client() -> None:
            with httpx.Client(base_url=url, timeout=3600) as http:
                while True:
                    with lock:
                        if not jobs:
                            return
                        probe, chunk = jobs.pop()
                    params = {"probe": "bench"} if probe == "linear" else {}
                    r = http.post(f"/v1/probes/{probe}", json={"texts": chunk, "params": params})
                    r.raise_for_status()

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        health = httpx.get(f"{url}/health", timeout=10).json()
        requests, batches = health["probe_requests"], health["probe_batches"]
        merged = health["probe_max_requests_merged"]
        print(f"worker: {requests} requests in {batches} batches (at most {merged} merged)")
        return elapsed, t_train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--per-request", type=int, default=1)
    ap.add_argument("--layer", type=float, default=0.75, help="share of the depth")
    args = ap.parse_args()
    loaded = load_model(args.model, device="cpu", cache_dir=Settings.from_env().cache_dir)
    depth = loaded.model.config.num_hidden_layers
    layer = int(args.layer * depth)
    batch = texts(args.n, loaded.tokenizer)
    tokens = sum(len(loaded.tokenizer(t)["input_ids"]) for t in batch)
    params = sum(p.numel() for p in loaded.model.parameters())
    flops, roof = roofline(params)
    t_naive = naive(loaded, batch, layer)
    del loaded
    t_worker, t_train = worker(args.model, batch, args.clients, args.per_request, args.layer)
    # the work per text: the text once for surprisal, text + suffix for author (the naive loop
    # also pays a forward for the content-free calibration text per text), and the text up to
    # the probe's layer for linear
    work = (2 + layer / depth) * tokens
    read = f"surprisal + author (4 pairs) + linear (layer {layer}/{depth})"
    size = f"{params / 1e6:.0f}M params, matmul {flops / 1e9:.0f} GFLOP/s"
    load = f"{args.clients} clients x {args.per_request} text(s) per request"
    training = f"probe training {t_train:.1f} s (not counted)"
    print(f"{args.n} texts, {tokens} tokens, {read}, {size}; {load}; {training}")
    print("| reader | seconds | tokens/s | × naive | share of roofline |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, t in (("naive loop", t_naive), (f"worker, {args.clients} clients", t_worker)):
        rate = work / t
        print(f"| {name} | {t:.1f} | {rate:.0f} | {t_naive / t:.2f} | {rate / roof:.1%} |")
    print(f"| roofline | {work / roof:.1f} | {roof:.0f} | {t_naive / (work / roof):.2f} | 100% |")


if __name__ == "__main__":
    main()
