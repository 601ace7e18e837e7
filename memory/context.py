"""The run context an agent prompt is built from: SUMMARY.md plus the tail of LOG.md.

Never from in-process history: a fresh process, or an agent whose conversation was compacted,
gets the same context from the same files.
"""

from __future__ import annotations

from pathlib import Path

from memory.log import RunLog


def run_context(run_dir: Path, *, log_tail: int = 15) -> str:
    run_dir = Path(run_dir)
    summary = run_dir / "SUMMARY.md"
    parts = [summary.read_text(encoding="utf-8").strip() if summary.exists() else "(no summary)"]
    entries = RunLog(run_dir / "LOG.md").tail(log_tail) if (run_dir / "LOG.md").exists() else []
    if entries:
        parts.append(f"# Last {len(entries)} LOG entries\n")
        parts.extend(e.render().strip() for e in entries)
    return "\n\n".join(parts) + "\n"
