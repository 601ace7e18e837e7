"""Held-out AUROC of every truesight probe on the contrast datasets, through the real worker;
with --validity, each trained probe of a protocol against its controls and transfer set.

    RESEARCH_CACHE_DIR=~/.cache/research .venv/bin/python bench/probe_quality.py \
        [--model smollm2] [--layer 0.75]
    RESEARCH_CACHE_DIR=~/.cache/research .venv/bin/python bench/probe_quality.py --validity \
        [--protocol protocols/deu.yaml] [--model smollm2]

For each dataset in protocols/data/ (instructed pairs as written and in the original
same-statement variant; sincere vs performative narration) the test split is read by the
zero-shot probes (surprisal, author, followup), each metric oriented in advance so that a higher
score should mean the positive label (deceptive / performative); linear probes are trained on
the train split by the worker and scored on the test split, beside a bag-of-words baseline. An
AUROC under 0.5 means the readout points the other way from what its name suggests.

--validity does what a run's probe stage does, with the protocol's own recipes and parameters:
trains each `probes.train` probe with its random-weight control and transfer set (twice: the
second request is answered from the probe's folder), prints the figures and verdict the report
would show, and the zero-shot readouts' AUROC and direction on the transfer sets.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sklearn.metrics import roc_auc_score  # noqa: E402

from agents.truesight import TruesightClient  # noqa: E402
from bench.worker import running_worker  # noqa: E402
from orchestrator.analysis.validity import probe_validity  # noqa: E402
from orchestrator.nodes.probe import CONDITIONED  # noqa: E402
from orchestrator.nodes.probe_validity import RANDOM_SEED, transfer_readouts  # noqa: E402
from orchestrator.protocol import load_protocol  # noqa: E402
from truesight.probes import dataset  # noqa: E402

QUESTIONS = ["Was the text above written sincerely?", "Is the text above honest?"]
# metric -> sign: +1 if a higher value should mean the positive label (deceptive, performative)
ORIENTED = {
    "surprisal.mean_nll": 1,
    "surprisal.p90": 1,
    "author.sincere_vs_insincere": -1,
    "author.honest_vs_deceptive": -1,
    "author.calm_vs_anxious": -1,
    "author.human_vs_ai": -1,
    "followup.sincerely": -1,
    "followup.honest": -1,
}
DATASETS = [
    ("instructed_pairs", "as_written"),
    ("instructed_pairs", "same_statement"),
    ("sincere_performative", "as_written"),
]


def metrics(http: httpx.Client, texts: list[str], contexts: list[str]) -> dict[str, list[float]]:
    body = {"texts": texts, "contexts": contexts}
    out: dict[str, list[float]] = {m: [] for m in ORIENTED}
    for start in range(0, len(texts), 16):
        part = {k: v[start : start + 16] for k, v in body.items()}
        sur = http.post("/v1/probes/surprisal", json=part).raise_for_status().json()["results"]
        # author and followup read the text alone: context would be read as part of the author
        alone = {"texts": part["texts"]}
        aut = http.post("/v1/probes/author", json=alone).raise_for_status().json()["results"]
        fol = (
            http.post("/v1/probes/followup", json=alone | {"params": {"questions": QUESTIONS}})
            .raise_for_status()
            .json()["results"]
        )
        for s, a, f in zip(sur, aut, fol, strict=True):
            out["surprisal.mean_nll"].append(s["mean_nll"])
            out["surprisal.p90"].append(s["p90"])
            for pair, v in a["attributes"].items():
                out[f"author.{pair}"].append(v)
            q = list(f["questions"].values())
            out["followup.sincerely"].append(q[0])
            out["followup.honest"].append(q[1])
    return out


def validity(url: str, protocol: Path) -> None:
    """The protocol's trained probes as its probe stage measures them, printed as tables."""
    spec = load_protocol(protocol).protocol.probes
    assert spec is not None and spec.train, f"{protocol} trains no probes"
    client = TruesightClient(url, timeout_s=7200)
    rows, seconds = [], []
    try:
        for name, t in spec.train.items():
            data = (protocol.parent / t.dataset).read_text()
            body = {"variant": t.variant, "layer": t.layer, "c": t.c, "random_seed": RANDOM_SEED}
            if t.transfer is not None:
                body |= {"transfer": (protocol.parent / t.transfer).read_text()}
                body |= {"transfer_source": t.transfer}
            for _ in range(2):  # the second is answered from the probe's folder
                start = time.perf_counter()
                reply = client.train(f"v-{name}", data, source=t.dataset, **body)
                seconds.append((name, reply["validity"]["computed"], time.perf_counter() - start))
            record = {**reply["probe"], "transfer_set": t.transfer, "validity": reply["validity"]}
            rows.append(probe_validity(name, t.dataset, record))
        readouts = transfer_readouts(
            spec, lambda rel: (protocol.parent / rel).read_bytes(), client, CONDITIONED
        )
    finally:
        client.close()
    print(f"probe validity, {protocol.name}, model {rows[0].model}; margin {rows[0].margin}")
    held_out = ("held-out", "bag of words", "random-weight")
    transfer = ("transfer set", "transfer AUROC", "bag of words", "random-weight")
    print("| " + " | ".join(("probe", *held_out, *transfer, "FP at threshold", "TPR")) + " |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for v in rows:
        x = v.transfer
        assert x is not None and x.random_auroc is not None and v.random_auroc is not None
        print(
            f"| {v.name} (layer {v.layer}) | {v.heldout_auroc:.3f} | {v.bow_auroc:.3f} | "
            f"{v.random_auroc:.3f} | {x.set} ({x.n_pos}/{x.n_neg}) | {x.auroc:.3f} | "
            f"{x.bow_auroc:.3f} | {x.random_auroc:.3f} | {x.false_positives}/{x.n_neg} | "
            f"{100 * x.tpr:.0f}% |"
        )
    for v in rows:
        print(f"- {v.name}: {v.verdict}")
    for name, computed, took in seconds:
        print(f"- request for {name}: {took:.1f} s, computed {computed or 'nothing (cached)'}")
    print("\n| readout | transfer set | AUROC | direction | p |")
    print("| --- | --- | ---: | --- | ---: |")
    for found in readouts.values():
        for r in found:
            print(f"| {r.metric} | {r.set} | {r.auroc:.3f} | {r.direction} | {r.p:.3g} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--layer", type=float, default=0.75, help="linear probe layer (share)")
    ap.add_argument("--validity", action="store_true", help="the protocol's probes' validity")
    ap.add_argument("--protocol", type=Path, default=ROOT / "protocols" / "deu.yaml")
    args = ap.parse_args()
    if args.validity:
        with running_worker(args.model) as url:
            validity(url, args.protocol.resolve())
        return
    rows = []
    with running_worker(args.model) as url, httpx.Client(base_url=url, timeout=3600) as http:
        model = http.get("/v1/probes").json()["model"]
        for name, variant in DATASETS:
            path = ROOT / "protocols" / "data" / f"{name}.jsonl"
            data = dataset.load(path, variant=variant)
            test = data.split("test")
            y = [e.label for e in test]
            found = metrics(http, [e.text for e in test], [e.context for e in test])
            row = {m: roc_auc_score(y, [s * v for v in found[m]]) for m, s in ORIENTED.items()}
            probe = {"name": f"q-{name}-{variant}", "variant": variant, "layer": args.layer}
            body = {**probe, "dataset": path.read_text()}
            meta = http.post("/v1/trained-probes", json=body).raise_for_status().json()
            row["linear"] = meta["probe"]["heldout_auroc"]
            row["bag of words"] = meta["probe"]["bow_auroc"]
            rows.append((f"{name} ({variant}, {len(test)} test)", row))
    columns = list(rows[0][1])
    print(f"held-out AUROC on {model}; linear at layer share {args.layer}")
    print("| readout | " + " | ".join(r[0] for r in rows) + " |")
    print("| --- | " + " | ".join("---:" for _ in rows) + " |")
    for c in columns:
        print(f"| {c} | " + " | ".join(f"{r[1][c]:.3f}" for r in rows) + " |")


if __name__ == "__main__":
    main()
