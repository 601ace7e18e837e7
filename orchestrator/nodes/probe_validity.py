"""The probe stage's measure of its own instruments: for each trained probe, what the worker
found of it (the same recipe on a random-weight copy of the model, the probe on its transfer
set), and how the zero-shot readouts fare on the transfer sets. Everything goes to
artifacts/probes/<name>.json and LOG.md, where the analysis reads it (analysis/validity.py).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from agents.truesight import TRAINED, ReadoutSpec, TruesightClient, WorkerError
from memory import write_atomic
from orchestrator.analysis import probe_metrics
from orchestrator.analysis.result import ProbeTransfer, ReadoutTransfer
from orchestrator.analysis.validity import probe_validity, readout_transfer
from orchestrator.context import RunContext
from orchestrator.errors import UserError
from orchestrator.protocol.schema import Probes, TrainedProbe

RANDOM_SEED = 0
"""Seed of the random-weight copy every trained probe is compared with."""

Example = tuple[str, str, int]
"""(text, context, label) of one line of a transfer set."""


def read_set(raw: bytes) -> tuple[tuple[str, str], list[Example]]:
    """A transfer set's (positive, negative) labels and its examples, read as the worker reads
    them: text before meta.statement_char_start is context, the whitespace at the seam goes
    with the text. The worker has checked the file when it trained the probe."""
    labels, rows = ("positive", "negative"), []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if record.get("header"):
            labels = (str(record.get("positive")), str(record.get("negative")))
            continue
        text, start = record["text"], (record.get("meta") or {}).get("statement_char_start")
        cut = len(text[:start].rstrip()) if start else 0
        rows.append((text[cut:], text[:cut], record["label"]))
    return labels, rows


def transfer_readouts(
    spec: Probes,
    read_file: Callable[[str], bytes],
    client: TruesightClient,
    conditioned: set[str],
) -> dict[str, list[ReadoutTransfer]]:
    """Each zero-shot metric the protocol runs, on each transfer set (read with `read_file`
    from its protocol-relative path), by set. Probes in `conditioned` read the set's context as
    they read the prompt in the stage. Each batch is one request for every zero-shot probe, so
    the worker reads each text once for all of them (as the stage reads its responses)."""
    zero_shot = [
        ReadoutSpec(p, p, spec.params.get(p, {}), p in conditioned)
        for p in spec.run
        if p not in TRAINED
    ]
    out: dict[str, list[ReadoutTransfer]] = {}
    for t in spec.train.values():
        if t.transfer is None or t.transfer in out:
            continue
        labels, rows = read_set(read_file(t.transfer))
        values: dict[str, list[tuple[int, float]]] = defaultdict(list)
        # without a zero-shot probe there is nothing to ask (the stage runs only trained ones)
        for start in range(0, len(rows), spec.batch_size) if zero_shot else ():
            batch = rows[start : start + spec.batch_size]
            contexts = [c for _, c, _ in batch] if spec.context == "prompt" else None
            try:
                reply = client.readouts([x for x, _, _ in batch], zero_shot, contexts)
            except WorkerError as e:
                if e.status >= 500:
                    raise
                raise UserError(f"{t.transfer}: the worker cannot read it: {e.message}") from e
            for (_, _, y), row in zip(batch, reply.results, strict=True):
                for s in zero_shot:
                    got = row[s.name]
                    if got["error"] is not None:
                        message = f"{t.transfer}: the worker cannot read it: {got['error']}"
                        raise UserError(message)
                    for metric, v in probe_metrics(s.probe, got["result"]).items():
                        values[metric].append((y, v))
        out[t.transfer] = [readout_transfer(m, t.transfer, labels, v) for m, v in values.items()]
    return out


def record_probe(
    ctx: RunContext,
    name: str,
    t: TrainedProbe,
    reply: dict[str, Any],
    readouts: list[ReadoutTransfer],
) -> None:
    """artifacts/probes/<name>.json (the probe's probe.json, its validity, the zero-shot
    readouts on its transfer set) and one LOG entry with the figures and the verdict."""
    meta = reply["probe"]
    record = {
        **meta,
        "transfer_set": t.transfer,
        "validity": reply.get("validity"),
        "transfer_readouts": [r.model_dump(mode="json") for r in readouts],
    }
    folder = ctx.run.path("artifacts", "probes")
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / f"{name}.json", json.dumps(record, indent=2) + "\n")
    v = probe_validity(name, t.dataset, record)
    how = f"trained in {reply['seconds']:.0f} s" if reply["trained"] else "already trained"
    baselines = []
    if v.bow_auroc is not None:
        baselines.append(f"bag-of-words baseline {v.bow_auroc:.3f}")
    if v.random_auroc is not None:
        baselines.append(f"random-weight control {v.random_auroc:.3f}")
    text = (
        f"linear probe {name} ({v.positive} vs {v.negative}, {t.dataset}, {meta['variant']}, "
        f"layer {v.layer}, on {v.model}) {how}: held-out AUROC {v.heldout_auroc:.3f}"
        + (f" ({', '.join(baselines)})" if baselines else "")
    )
    if v.transfer is not None:
        text += "; " + _transfer_text(v.transfer, v.positive, v.negative)
    ctx.log("probe", "probe", f"{text}. Verdict: {v.verdict}.")


def _transfer_text(x: ProbeTransfer, positive: str, negative: str) -> str:
    compared = [f"AUROC {x.auroc:.3f}", f"bag of words {x.bow_auroc:.3f}"]
    if x.random_auroc is not None:
        compared.append(f"random-weight control {x.random_auroc:.3f}")
    return (
        f"on {x.set} ({x.n_pos} {positive} / {x.n_neg} {negative}): {', '.join(compared)}; "
        f"its 1%-FPR threshold flags {x.false_positives} of {x.n_neg} {negative} "
        f"({100 * x.fpr:.0f}%)"
    )


def log_readouts(ctx: RunContext, by_set: dict[str, list[ReadoutTransfer]]) -> None:
    """One LOG entry per transfer set: each zero-shot metric's AUROC and direction on it."""
    for path, readouts in by_set.items():
        listed = ", ".join(
            f"{r.metric} {r.auroc:.2f} ({r.direction})" if r.auroc is not None else r.metric
            for r in readouts
        )
        ctx.log("probe", "readouts", f"zero-shot readouts on {path} (AUROC): {listed}")
