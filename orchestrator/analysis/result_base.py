"""The parts every typed analysis result is made of: the strict base model, a rate with its
interval, and the keys of a cell."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


class Rate(_Result):
    """k positives of n scored items, with a Wilson 95% interval (None without items)."""

    n: int = Field(description="Scored items (unscored ones are left out).")
    k: int = Field(description="Items judged positive.")
    rate: float | None = Field(description="k / n; None when n is 0.")
    lo: float | None = Field(description="Lower end of the Wilson 95% interval.")
    hi: float | None = Field(description="Upper end of the Wilson 95% interval.")


class CellRate(Rate):
    """One outcome's rate in one cell, with the cell's unscored items beside it."""

    unscored: int = Field(description="Items of the cell without a scored verdict.")


class _Level(_Result):
    level: str = Field(description="The contrast factor's level in this arm.")


class ArmRate(Rate, _Level):
    """One arm of a contrast: its level and the outcome's rate among its scored items."""


class _CellKey(_Result):
    cell: str = Field(description="Cell key, e.g. `claude.deu.planted`.")
    subject: str = Field(description="The subject model's id in the protocol.")
    levels: dict[str, str] = Field(description="Each design factor's level in this cell.")


class Correction(_Result):
    """How the contrasts' p-values were corrected for multiple comparisons."""

    method: str = Field(description="statsmodels multipletests method, or `none`.")
    alpha: float = Field(description="Level of the corrected tests.")
    family: str = Field(description="What one family of tests is, in words.")
    tests: int = Field(description="Tests in the largest family.")
