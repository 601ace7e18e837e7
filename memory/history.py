"""The run directory's git history: one commit per finished stage and per approval.

Only text files are committed (databases, locks and temp files are ignored), so the history shows
how LOG.md, SUMMARY.md, the report and the exports evolved, and stays small.
"""

from __future__ import annotations

from pathlib import Path

import git

IGNORE = """# research: only text files are versioned (report.html embeds the PNGs)
*.sqlite
*.sqlite-*
*.lock
.*.tmp
*.png
*.log
report.html
"""


class RunHistory:
    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        if (self.dir / ".git").exists():
            self.repo = git.Repo(self.dir)
            # a process killed mid-commit leaves this behind; we hold the run lock, so it is stale
            (self.dir / ".git" / "index.lock").unlink(missing_ok=True)
        else:
            self.repo = git.Repo.init(self.dir)
            with self.repo.config_writer() as cfg:
                cfg.set_value("user", "name", "research")
                cfg.set_value("user", "email", "research@localhost")
                cfg.set_value("commit", "gpgsign", "false")
            (self.dir / ".gitignore").write_text(IGNORE, encoding="utf-8")

    def commit(self, message: str) -> str | None:
        """Commit every changed text file; return the sha, or None when nothing changed."""
        self.repo.git.add(A=True)
        if self.repo.head.is_valid() and not self.repo.index.diff("HEAD"):
            return None
        return self.repo.index.commit(message).hexsha

    def messages(self) -> list[str]:
        if not self.repo.head.is_valid():
            return []
        return [c.message.strip() for c in self.repo.iter_commits()][::-1]
