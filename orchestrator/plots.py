"""The report's figures: primary-outcome rates, enum and ordinal verdict fields per cell
(plots_levels.py), probe readouts per cell, evaluator agreement.

PNG files under artifacts/plots/, drawn with matplotlib's object API on the Agg canvas (no
pyplot, so no global figure state) under a fixed style, without a timestamp or version in the
metadata: the same records give the same bytes. matplotlib is imported inside the functions: it
costs start-up time that only the report stage needs.
"""

from __future__ import annotations

import io
import itertools
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memory import write_atomic
from orchestrator.analysis import AnalysisResult, load_agreement, probe_metrics
from orchestrator.analysis.result import Agreement, Cell, ProbeSummary
from orchestrator.plots_levels import level_figures
from orchestrator.protocol.schema import Protocol
from orchestrator.records import ProbeSource
from orchestrator.rundir import RunDir

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}


def make_plots(run: RunDir, protocol: Protocol, analysis: AnalysisResult) -> list[dict[str, str]]:
    """Draw every figure the data allows; return name, path (relative to the run), title and
    caption of each, in reading order. A figure without data is left out, not drawn empty."""
    from matplotlib import rc_context

    folder = run.path("artifacts", "plots")
    folder.mkdir(parents=True, exist_ok=True)
    agreement = load_agreement(run.path("artifacts", "agreement.json"))
    figures: list[tuple[str, str, str, Figure | None]] = []
    with rc_context(STYLE):
        figures.append(_rates(protocol, analysis))
        figures.extend(level_figures(analysis, PALETTE))
        figures.extend(_probes(run, analysis))
        figures.append(_agreement(agreement, analysis.primary))
        out = []
        for name, title, caption, fig in figures:
            if fig is None:
                continue
            path = folder / f"{name}.png"
            _save(fig, path)
            rel = f"artifacts/plots/{name}.png"
            out.append({"name": name, "path": rel, "title": title, "caption": caption})
    for stale in folder.glob("*.png"):  # figures an earlier report drew that no longer apply
        if stale.stem not in {f["name"] for f in out}:
            stale.unlink()
    write_atomic(folder / INDEX, json.dumps(out, indent=2) + "\n")
    return out


INDEX = "figures.json"
"""The figures the last make_plots drew, with titles and captions, for re-rendering a report
without drawing them again."""


def drawn_figures(run: RunDir) -> list[dict[str, str]] | None:
    """What make_plots last drew for this run, if all of it is still on disk."""
    index = run.path("artifacts", "plots", INDEX)
    if not index.exists():
        return None
    figures = json.loads(index.read_text())
    return figures if all(run.path(f["path"]).exists() for f in figures) else None


def _save(fig: Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)


NO_DATA: dict[str, Any] = {
    "rotation": 90,
    "ha": "center",
    "va": "bottom",
    "fontsize": 7,
    "color": "#888888",
}
DOT: dict[str, Any] = {"fmt": "o", "capsize": 3, "markersize": 6, "elinewidth": 1.4}
COUNT: dict[str, Any] = {
    "xytext": (5, 0),
    "textcoords": "offset points",
    "fontsize": 7,
    "color": "#555555",
    "va": "center",
}
"""How a cell without data, a rate's dot and its k/n label are drawn."""


def _rates(protocol: Protocol, analysis: AnalysisResult) -> tuple[str, str, str, Figure | None]:
    """Dots with Wilson intervals: one panel per subject, the first factor's levels side by side
    within each combination of the other factors."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    primary = analysis.primary
    cells = [c for c in analysis.cells if primary in c.outcomes]
    title = f"{primary}: rate per cell"
    if not cells:
        return "rates", title, "", None
    factors = list(protocol.design.factors)
    hue, rest = factors[0], factors[1:]
    hue_levels = protocol.design.factors[hue].levels
    groups = list(itertools.product(*(protocol.design.factors[f].levels for f in rest)))
    order = [s.id for s in protocol.subjects]
    present = {c.subject for c in cells}
    subjects = [s for s in order if s in present] + sorted(present - set(order))
    width = max(2.2, 0.9 * len(groups) * max(1, len(hue_levels) / 2) + 1.2)
    ncols = max(1, min(len(subjects), 4, int(12 // width)))  # wide panels stack, not squeeze
    nrows = math.ceil(len(subjects) / ncols)
    fig = Figure(figsize=(width * ncols + 0.6, 3.2 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    for ax, subject in zip(axes.flat, subjects, strict=False):
        subject_cells = [c for c in cells if c.subject == subject]
        _rate_dots(ax, subject_cells, primary, rest, groups, hue, hue_levels)
        ax.set_title(subject)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(["\n".join(g) or "all" for g in groups])
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(axis="x", visible=False)
        if rest:
            ax.set_xlabel(" / ".join(rest))
    for ax in axes.flat[len(subjects) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(primary)
        ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    handles = [
        Line2D([], [], marker="o", linestyle="", color=PALETTE[i % len(PALETTE)])
        for i in range(len(hue_levels))
    ]
    labels = [f"{hue}: {lv}" for lv in hue_levels]
    fig.legend(handles, labels, loc="outside upper center", ncols=len(hue_levels))
    caption = (
        f"Share of scored responses with {primary} per cell, with Wilson 95% intervals; the "
        f"numbers beside each dot are k/n. Unscored items are left out of n."
    )
    return "rates", title, caption, fig


def _rate_dots(
    ax: Any,
    cells: list[Cell],
    primary: str,
    rest: list[str],
    groups: list[tuple[str, ...]],
    hue: str,
    hue_levels: list[str],
) -> None:
    """One subject's panel: per group of the other factors, a dot per level of `hue`."""
    step = 0.7 / max(1, len(hue_levels))
    for gi, group in enumerate(groups):
        for hi, level in enumerate(hue_levels):
            want = dict(zip(rest, group, strict=True)) | {hue: level}
            cell = next(
                (c for c in cells if all(c.levels.get(f) == v for f, v in want.items())), None
            )
            x = gi + (hi - (len(hue_levels) - 1) / 2) * step
            o = cell.outcomes[primary] if cell else None
            if o is None or o.rate is None or o.lo is None or o.hi is None:
                ax.text(x, 0.02, "no data", **NO_DATA)
                continue
            err = [[o.rate - o.lo], [o.hi - o.rate]]
            color = PALETTE[hi % len(PALETTE)]
            ax.errorbar([x], [o.rate], yerr=err, color=color, **DOT)
            ax.annotate(f"{o.k}/{o.n}", (x, o.rate), **COUNT)


def probe_values(run: RunDir) -> dict[str, dict[str, list[float]]]:
    """Per-item probe metric values by metric, then cell (the probe stage's readouts only)."""
    cell_of = {i.id: i.cell for i in run.records.items()}
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in run.records.probe_results(source=ProbeSource.STAGE):
        if row.item_id in cell_of and row.result is not None:
            for metric, v in probe_metrics(row.probe, row.result).items():
                if math.isfinite(v):
                    out[metric][cell_of[row.item_id]].append(v)
    return out


def _probes(run: RunDir, analysis: AnalysisResult) -> list[tuple[str, str, str, Figure | None]]:
    """One figure per probe group: a panel per metric, a box and the items' dots per cell."""
    from matplotlib.figure import Figure

    probes = analysis.probes
    if probes is None or not probes.groups:
        return []
    values = probe_values(run)
    import matplotlib

    # `vert` gave way to `orientation` in matplotlib 3.10 (and warns there)
    modern = tuple(int(x) for x in matplotlib.__version__.split(".")[:2]) >= (3, 10)
    horizontal: dict[str, Any] = {"orientation": "horizontal"} if modern else {"vert": False}
    cells = [c.cell for c in analysis.cells] or sorted({c for per in values.values() for c in per})
    out = []
    for group, metrics in probes.groups.items():
        metrics = [m for m in metrics if values.get(m)]
        if not metrics:
            continue
        ncols = min(len(metrics), 4)
        nrows = math.ceil(len(metrics) / ncols)
        fig = Figure(
            figsize=(2.4 * ncols + 2.4, (0.32 * len(cells) + 0.9) * nrows), layout="constrained"
        )
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
        rng = _rng()
        ys = list(range(len(cells)))[::-1]
        for ax, metric in zip(axes.flat, metrics, strict=False):
            data = [values[metric].get(c, []) for c in cells]
            present = [(y, d) for y, d in zip(ys, data, strict=True) if d]
            positions = [y for y, _ in present]
            ax.boxplot([d for _, d in present], positions=positions, **horizontal, **BOX)
            for y, d in present:
                jitter = rng.uniform(-0.18, 0.18, len(d))
                ax.scatter(d, [y + j for j in jitter], **ITEM_DOT)
            ax.set_title(metric.split(".", 1)[-1])
            ax.grid(axis="y", visible=False)
        for ax in axes.flat[len(metrics) :]:
            ax.set_visible(False)
        for ax in axes[:, 0]:
            ax.set_yticks(ys)
            ax.set_yticklabels([c.replace(".", " · ") for c in cells])
            ax.set_ylim(-0.6, len(cells) - 0.4)
        caption = _probe_caption(probes, group, metrics)
        out.append((f"probes-{group}", f"Truesight readouts: {group}", caption, fig))
    return out


GREY = {"color": "#999999"}
BOX: dict[str, Any] = {
    "widths": 0.6,
    "showfliers": False,
    "medianprops": {"color": "#333333"},
    "boxprops": GREY,
    "whiskerprops": GREY,
    "capprops": GREY,
}
ITEM_DOT: dict[str, Any] = {
    "s": 12,
    "color": PALETTE[0],
    "alpha": 0.7,
    "linewidths": 0,
    "zorder": 3,
}
"""How a cell's box and its items' dots are drawn in the probe figures."""


def _probe_caption(probes: ProbeSummary, group: str, metrics: list[str]) -> str:
    labels = probes.labels
    notes = "; ".join(f"{m.split('.', 1)[-1]}: {labels[m]}" for m in metrics if m in labels)
    readers = ", ".join(probes.models or ["the worker"])
    caption = (
        f"Per-response `{group}` readouts by cell (dots: items; box: median and quartiles) "
        f"from {readers}."
    )
    return caption + (f" {notes}." if notes else "")


def _rng() -> Any:
    import numpy as np

    return np.random.default_rng(0)  # jitter only; fixed so that figures are reproducible


UNDEFINED: dict[str, Any] = {
    "facecolor": "#fdf3dc",
    "edgecolor": "#e0c98f",
    "hatch": "///",
    "linewidth": 0,
}
"""A pair whose kappa is undefined: hatched."""


def _agreement(agreement: Agreement | None, primary: str) -> tuple[str, str, str, Figure | None]:
    """Cohen's kappa between each pair of evaluators on their overlap items."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    pairs = agreement.pairs if agreement is not None else []
    title = f"Agreement between evaluators on {primary}"
    if not pairs:
        return "agreement", title, "", None
    import numpy as np

    names = sorted({p.a for p in pairs} | {p.b for p in pairs})
    index = {n: i for i, n in enumerate(names)}
    kappa = np.full((len(names), len(names)), np.nan)
    size = max(3.6, 0.75 * len(names) + 2.2)
    fig = Figure(figsize=(size + 1.0, size), layout="constrained")
    ax = fig.subplots()
    cmap = ListedColormap(colormaps["RdBu"](np.linspace(0.05, 0.95, 256))).with_extremes(
        bad="#f2f2f2"
    )
    for p in pairs:
        i, j = index[p.a], index[p.b]
        if p.kappa is not None:
            kappa[i, j] = kappa[j, i] = p.kappa
    image = ax.imshow(np.ma.masked_invalid(kappa), cmap=cmap, vmin=-1, vmax=1)
    for p in pairs:
        i, j = index[p.a], index[p.b]
        k = p.kappa
        text = f"κ {k:.2f}" if k is not None else "κ n/a"
        text += f"\n{100 * p.agree:.0f}%" if p.agree is not None else ""
        text += f"\nn={p.n}"
        dark = k is not None and abs(k) > 0.6
        for r, c in ((i, j), (j, i)):
            if k is None:  # a pair that shared items but whose kappa is undefined
                ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, **UNDEFINED))
            color = "white" if dark else "#222222"
            ax.text(c, r, text, ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    ax.grid(False)
    ax.spines[:].set_visible(False)
    fig.colorbar(image, ax=ax, label="Cohen's κ", shrink=0.8)
    caption = (
        f"Cohen's κ on {primary} for each pair of evaluators that judged the same items, with "
        "raw agreement and the number of shared items. Grey: the pair shared no items; hatched: "
        "κ is undefined (one category only, or fewer than two shared items)."
    )
    return "agreement", title, caption, fig
