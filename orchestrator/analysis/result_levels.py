"""The typed results of the verdict fields that are neither bool outcomes nor text: how each
cell's scored items spread over an enum's values or an ordinal's levels (`Distribution`), and
the mean of an int or float field (`Mean`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from orchestrator.analysis.result_base import _Result


class LevelShare(_Result):
    """One value of an enum or level of an ordinal in one cell: its count, share and interval."""

    level: str = Field(description="The value or level, as the protocol declares it.")
    declared: bool = Field(
        default=True,
        description="False for a value the protocol does not declare (validation keeps these "
        "out of scored verdicts; one that got in anyway is counted under its own name).",
    )
    count: int = Field(description="Scored items with this value.")
    share: float | None = Field(description="count / n; None when the cell has no scored items.")
    lo: float | None = Field(
        description="Lower end of the simultaneous 95% interval (Goodman); None when not "
        "computable (see `Distribution.note`)."
    )
    hi: float | None = Field(description="Upper end of the simultaneous 95% interval (Goodman).")


class Distribution(_Result):
    """How one cell's scored items spread over an enum's values or an ordinal's levels.

    The intervals are simultaneous 95% intervals for all the shares together (Goodman 1965,
    statsmodels `multinomial_proportions_confint`): every level's interval covers its true
    share at once in 95% of samples, so they are wider than one Wilson interval per level."""

    kind: Literal["enum", "ordinal"] = Field(
        description="`enum` (values in no order) or `ordinal` (levels lowest first)."
    )
    n: int = Field(description="Scored items with a value for the field.")
    levels: list[LevelShare] = Field(
        description="Every declared value (enum: `values` order) or level (ordinal: lowest "
        "first), those no item took included; then any undeclared value, alphabetically."
    )
    method: str = Field(default="goodman", description="statsmodels multinomial interval method.")
    approximate: bool = Field(
        default=False,
        description="Some level has fewer than 5 items: below the rule of thumb for Goodman's "
        "chi-square approximation, so the intervals are rough (still reported).",
    )
    note: str | None = Field(
        default=None, description="Why the cell has no intervals, in words; None when it has."
    )


class Mean(_Result):
    """The mean of an int (or float) verdict field over one cell's scored items."""

    n: int = Field(description="Scored items with a finite value for the field.")
    mean: float | None = Field(description="Their mean; None when n is 0.")
    sd: float | None = Field(description="Sample standard deviation (ddof 1); None when n < 2.")
    lo: float | None = Field(
        description="Lower end of the 95% t interval of the mean (n − 1 df); None when n < 2."
    )
    hi: float | None = Field(description="Upper end of the 95% t interval of the mean.")
