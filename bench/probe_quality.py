"""Held-out AUROC of every truesight probe on the contrast datasets, through the real worker.

    RESEARCH_CACHE_DIR=~/.cache/research .venv/bin/python bench/probe_quality.py \
        [--model smollm2] [--layer 0.75]

For each dataset in protocols/data/ (instructed pairs as written and in the original
same-statement variant; sincere vs performative narration) the test split is read by the
zero-shot probes (surprisal, author, followup), each metric oriented in advance so that a higher
score should mean the positive label (deceptive / performative); linear probes are trained on
the train split by the worker and scored on the test split, beside a bag-of-words baseline. An
AUROC under 0.5 means the readout points the other way from what its name suggests.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sklearn.metrics import roc_auc_score  # noqa: E402

from bench.worker import running_worker  # noqa: E402
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--layer", type=float, default=0.75, help="linear probe layer (share)")
    args = ap.parse_args()
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
