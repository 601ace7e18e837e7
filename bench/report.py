"""Time the analyze and report stages on a synthetic full-size DEU run (no model, no API).

    .venv/bin/python bench/report.py [--items-per-cell 50] [--repeats 3]

Builds a run directory from protocols/deu.yaml at full size, fills records.sqlite with a scored
verdict per item (rates as in the recovery test) and a surprisal + author + linear readout per
item, then times each step the analyze and report stages run locally: the statistics
(analyze_records: Wilson, Newcombe + Fisher, Holm, the clustered logistic regression, probe
association), the plots, and report.md + report.html. The analyst's API call is not included.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.truesight import ProbeReadout  # noqa: E402
from orchestrator.analysis import analyze_records  # noqa: E402
from orchestrator.nodes.design import item_of  # noqa: E402
from orchestrator.plots import make_plots  # noqa: E402
from orchestrator.protocol import load_protocol  # noqa: E402
from orchestrator.protocol.stimuli import build_stimuli  # noqa: E402
from orchestrator.records import Verdict  # noqa: E402
from orchestrator.report import write_report  # noqa: E402
from orchestrator.rundir import RunDir  # noqa: E402

RATES = {("control", "planted"): 0.3, ("deu", "planted"): 0.6}


def build(runs: Path) -> RunDir:
    loaded = load_protocol(ROOT / "protocols" / "deu.yaml")
    run = RunDir.create(
        runs, loaded, run_id="bench", pilot=False, offline=False, local_model=None, models=[]
    )
    stimuli = build_stimuli(loaded.protocol, pilot=False)
    run.records.add_items([item_of(s) for s in stimuli])
    rng = random.Random(0)
    verdicts = []
    for s in stimuli:
        lv = dict(s.cell.levels)
        p = RATES.get((lv["framing"], lv["planted"]), 0.05)
        detected = rng.random() < p
        fields = {
            "detected": detected,
            "complied": not detected and rng.random() < 0.3,
            "questioned_legitimacy": detected and rng.random() < 0.5,
            "reasoning_style": rng.choice(["checklist", "experiential", "none"]),
            "evidence": "",
        }
        verdicts.append(Verdict(s.item_id, "evaluator-1", "b1", "scored", fields, None))
        surprisal = {"mean_nll": rng.gauss(3, 0.5), "p90": rng.gauss(6, 1), "max": 9.0}
        attributes = {
            "sincere_vs_insincere": rng.gauss(0, 1),
            "honest_vs_deceptive": rng.gauss(0, 1),
        }
        linear = {"score": rng.gauss(1.0 if detected else 0.0, 1)}
        for probe, result in (
            ("surprisal", surprisal),
            ("author", {"attributes": attributes}),
            ("linear:deception", linear),
        ):
            readout = ProbeReadout(s.item_id, probe, "bench", {}, s.item_id, result)
            run.records.add_probe_result(readout)
    run.records.add_verdicts(verdicts)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = build(Path(tmp))
        protocol = run.loaded.protocol
        times: dict[str, list[float]] = {"statistics": [], "plots": [], "report.md+html": []}
        for _ in range(args.repeats):
            t = time.perf_counter()
            analysis = analyze_records(protocol, run.records)
            times["statistics"].append(time.perf_counter() - t)
            analysis.model_dump_json()
            t = time.perf_counter()
            figures = make_plots(run, protocol, analysis)
            times["plots"].append(time.perf_counter() - t)
            t = time.perf_counter()
            write_report(run, protocol, analysis)  # makes the plots again, then renders
            times["report.md+html"].append(time.perf_counter() - t)
        items = analysis.totals.items
        html = run.path("report.html").stat().st_size
        run.close()
    print(f"synthetic DEU run: {items} items, {len(figures)} figures, report.html {html:,} bytes")
    print(f"{'step':<16} {'first (s)':>10} {'median (s)':>11}")
    for step, ts in times.items():
        print(f"{step:<16} {ts[0]:>10.2f} {statistics.median(ts):>11.2f}")


if __name__ == "__main__":
    main()
