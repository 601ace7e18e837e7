"""`research validate`: the preview shows stimuli from every cell, and `--offline` shows the
design an offline run would have (one local subject), before anything runs."""

from __future__ import annotations

import os
import re

from tests.conftest import DEU, research

SHOWN = re.compile(r"─ (\S+)\.(\d{3}) ─")
"""The rule above each shown stimulus: its item id, as cell and replicate."""


def shown(stdout: str) -> list[tuple[str, str]]:
    return SHOWN.findall(stdout)


def test_show_takes_one_stimulus_per_cell_before_a_second() -> None:
    r = research("validate", str(DEU), "--pilot", "--show", "3")
    assert r.returncode == 0, r.stderr
    cells = [cell for cell, _ in shown(r.stdout)]
    # three cells, not three replicates of one: a planted one and a DEU one among them
    assert cells == [
        "claude-sonnet.control.none",
        "claude-sonnet.control.planted",
        "claude-sonnet.deu.none",
    ]
    r = research("validate", str(DEU), "--pilot", "--show", "10")
    items = shown(r.stdout)
    assert len(items) == 10 and len({c for c, _ in items}) == 8
    assert [n for _, n in items] == ["000"] * 8 + ["001"] * 2  # every cell once, then again
    assert items[8][0] == items[0][0]  # the second round starts over in cell order


def test_offline_shows_the_design_an_offline_run_has() -> None:
    env = {**os.environ, "RESEARCH_LOCAL_MODEL": "my-local-model"}
    online = research("validate", str(DEU), "--pilot", env=env)
    assert online.returncode == 0, online.stderr
    assert "8 cells, 24 stimuli" in online.stdout
    r = research("validate", str(DEU), "--pilot", "--offline", "--show", "4", env=env)
    assert r.returncode == 0, r.stderr
    # one local subject stands in for both: the 4 cells and 12 items an offline pilot makes
    assert "4 cells, 12 stimuli" in r.stdout
    assert "the subjects and the judge are the local model my-local-model" in r.stdout
    assert [c for c, _ in shown(r.stdout)] == [
        "local.control.none",
        "local.control.planted",
        "local.deu.none",
        "local.deu.planted",
    ]
