"""Where the worker keeps what it caches: one root folder, given as `--cache-dir`.

The root holds the converted default model (models/), probe results (probe-cache.sqlite) and
trained probes (probes/). The worker reads no environment variable for it: whoever starts the
worker passes the folder (`research worker` and `research run` pass RESEARCH_CACHE_DIR).
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "research"
"""The root when `--cache-dir` is not given."""


def probes_dir(cache_dir: Path) -> Path:
    """Trained probes, served by `linear` and `tokens`."""
    return cache_dir / "probes"


def probe_cache_path(cache_dir: Path) -> Path:
    """The SQLite file of cached probe results."""
    return cache_dir / "probe-cache.sqlite"


def models_dir(cache_dir: Path) -> Path:
    """Models the worker converted and saved (the default offline model)."""
    return cache_dir / "models"
