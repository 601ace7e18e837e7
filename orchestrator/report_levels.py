"""What the report's "Other verdict fields" part shows (templates/report_levels.*.j2): a table per
enum or ordinal field, its columns the field's levels in their order and its rows the cells in
design order, with the figure that draws it; and the int and float fields' means per cell."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.analysis import AnalysisResult
from orchestrator.analysis.result import Distribution, LevelShare, Mean
from orchestrator.plots_levels import figure_name, level_fields


@dataclass(frozen=True)
class LevelRow:
    cell: str
    dist: Distribution | None
    """None where the cell has no distribution of the field (an older analysis)."""

    def at(self, level: str) -> LevelShare | None:
        """The cell's share of `level`, if its distribution lists it."""
        levels = self.dist.levels if self.dist else []
        return next((x for x in levels if x.level == level), None)


@dataclass(frozen=True)
class LevelTable:
    field: str
    kind: str
    """`enum` or `ordinal`."""
    levels: list[str]
    """Columns: the declared levels in their order, then any undeclared value."""
    undeclared: list[str]
    rows: list[LevelRow]
    figure: int | None
    """The figure's number in the report (1-based), if it was drawn."""
    figure_name: str


@dataclass(frozen=True)
class MeanRow:
    cell: str
    means: dict[str, Mean | None]


@dataclass(frozen=True)
class VerdictFields:
    levels: list[LevelTable]
    mean_fields: list[str]
    means: list[MeanRow]

    @property
    def any(self) -> bool:
        """Whether there is anything to show (a protocol with only bool and text fields has
        nothing, and the report then shows no such part)."""
        return bool(self.levels or self.mean_fields)


def verdict_fields(analysis: AnalysisResult, figures: list[dict[str, str]]) -> VerdictFields:
    numbers = {f["name"]: n for n, f in enumerate(figures, start=1)}
    tables = []
    for field in level_fields(analysis):
        rows = [LevelRow(c.cell, c.distributions.get(field)) for c in analysis.cells]
        shares = [x for r in rows if r.dist for x in r.dist.levels]
        kind = next(r.dist.kind for r in rows if r.dist)
        name = figure_name(field)
        tables.append(
            LevelTable(
                field=field,
                kind=kind,
                levels=list(dict.fromkeys(x.level for x in shares)),
                undeclared=sorted({x.level for x in shares if not x.declared}),
                rows=rows,
                figure=numbers.get(name),
                figure_name=name,
            )
        )
    mean_fields = list(dict.fromkeys(f for c in analysis.cells for f in c.means))
    means = [MeanRow(c.cell, {f: c.means.get(f) for f in mean_fields}) for c in analysis.cells]
    return VerdictFields(levels=tables, mean_fields=mean_fields, means=means if mean_fields else [])
