"""Per-agent notes under memory/: what an agent writes down before its context is compacted."""

from __future__ import annotations

from pathlib import Path

from memory.files import utc_stamp


def _path(run_dir: Path, agent: str) -> Path:
    if not agent or "/" in agent or agent.startswith("."):
        raise ValueError(f"bad agent name {agent!r}")
    return Path(run_dir) / "memory" / f"{agent}.md"


def append_note(run_dir: Path, agent: str, text: str) -> Path:
    path = _path(run_dir, agent)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = utc_stamp()
    with path.open("a", encoding="utf-8") as f:
        f.write(f"## {stamp}\n\n{text.strip()}\n\n")
    return path


def read_notes(run_dir: Path, agent: str) -> str:
    path = _path(run_dir, agent)
    return path.read_text(encoding="utf-8") if path.exists() else ""
