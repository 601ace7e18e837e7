"""The report's figures of the enum and ordinal verdict fields: per field, one stacked bar per
cell, its levels side by side in their order (an ordinal's lowest first, in a sequential colour
map; an enum's values in the report's palette).

Drawn like every figure in plots.py (object API, its style and `_save`, which make_plots
applies); matplotlib is imported inside the function for the same start-up reason.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from orchestrator.analysis import AnalysisResult
from orchestrator.analysis.result import Distribution

if TYPE_CHECKING:
    from matplotlib.figure import Figure

UNDECLARED = "#bbbbbb"
"""A value the protocol does not declare (it should not occur)."""
SEGMENT_LABEL = 0.08
"""Shares at least this wide carry their percentage inside the bar."""


def figure_name(field: str) -> str:
    """The figure's name and file stem for a verdict field (safe as a file name)."""
    return "levels-" + re.sub(r"[^A-Za-z0-9_-]", "-", field)


def level_fields(analysis: AnalysisResult) -> list[str]:
    """The enum and ordinal fields the analysis has distributions of, in its cells' order."""
    return list(dict.fromkeys(f for c in analysis.cells for f in c.distributions))


def level_figures(
    analysis: AnalysisResult, palette: list[str]
) -> list[tuple[str, str, str, Figure | None]]:
    """One figure per enum or ordinal field with a scored item somewhere; none otherwise."""
    out = []
    for field in level_fields(analysis):
        rows = [(c.cell, c.distributions.get(field)) for c in analysis.cells]
        if not any(d is not None and d.n for _, d in rows):
            continue
        out.append(_stacked(field, rows, palette))
    return out


def _stacked(
    field: str, rows: list[tuple[str, Distribution | None]], palette: list[str]
) -> tuple[str, str, str, Figure]:
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    first = next(d for _, d in rows if d is not None and d.n)
    levels = list(dict.fromkeys(x.level for _, d in rows if d for x in d.levels))
    declared = {x.level for _, d in rows if d for x in d.levels if x.declared}
    colours = _colours(first.kind, [lv for lv in levels if lv in declared], palette)
    fig = Figure(figsize=(7.2, 0.34 * len(rows) + 1.5), layout="constrained")
    ax = fig.subplots()
    ys = list(range(len(rows)))[::-1]
    for y, (_, d) in zip(ys, rows, strict=True):
        if d is None or not d.n:
            ax.text(0.01, y, "no scored items", va="center", fontsize=7, color="#888888")
            continue
        _bar(ax, y, d, colours)
    handles = [Patch(facecolor=colours.get(lv, UNDECLARED), label=lv) for lv in levels]
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(levels), 6))
    ax.set_yticks(ys)
    ax.set_yticklabels([cell.replace(".", " · ") for cell, _ in rows])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlim(0, 1.09)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_xlabel(f"share of scored items ({field})")
    ax.grid(axis="y", visible=False)
    ax.set_axisbelow(True)  # the grid behind the bars, not across them
    order = "lowest first, left to right" if first.kind == "ordinal" else "in the protocol's order"
    caption = (
        f"How each cell's scored responses spread over the levels of `{field}` ({first.kind}; "
        f"{order}); n at the end of each bar. The table under Other verdict fields gives each "
        "share with its simultaneous 95% interval (Goodman), which holds for all of a cell's "
        "levels at once. Unscored items are left out of n."
    )
    kind = "levels" if first.kind == "ordinal" else "values"
    return figure_name(field), f"{field}: {kind} per cell", caption, fig


def _bar(ax: Any, y: int, d: Distribution, colours: dict[str, str]) -> None:
    """One cell's bar: a segment per level with items, its share written inside when wide."""
    left = 0.0
    for x in d.levels:
        if not x.count or x.share is None:
            continue
        colour = colours.get(x.level, UNDECLARED)
        ax.barh([y], [x.share], left=left, height=0.7, color=colour, edgecolor="white")
        if x.share >= SEGMENT_LABEL:
            ink = "white" if _dark(colour) else "#222222"
            centre = left + x.share / 2
            text = f"{100 * x.share:.0f}%"
            ax.text(centre, y, text, ha="center", va="center", fontsize=7, color=ink)
        left += x.share
    ax.text(1.01, y, f"n={d.n}", va="center", fontsize=7, color="#555555")


def _colours(kind: str, levels: list[str], palette: list[str]) -> dict[str, str]:
    """An ordinal's levels light to dark in one hue; an enum's values in the palette."""
    if kind != "ordinal":
        return {lv: palette[i % len(palette)] for i, lv in enumerate(levels)}
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps["Blues"]
    top = max(1, len(levels) - 1)
    return {lv: to_hex(cmap(0.25 + 0.7 * i / top)) for i, lv in enumerate(levels)}


def _dark(colour: str) -> bool:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(colour)
    return 0.299 * r + 0.587 * g + 0.114 * b < 0.5
