"""Run memory on disk: LOG.md (append-only), SUMMARY.md (atomic), agent notes, git history.

Everything a new process or a compacted agent needs to continue a run is in these files; nothing
here keeps state in memory that the files do not also hold.
"""

from memory.context import run_context
from memory.files import utc_stamp, write_atomic
from memory.history import RunHistory
from memory.log import LogEntry, RunLog
from memory.notes import append_note, read_notes
from memory.program import OpenQuestion, Program, ProgramDir, RunLine, list_programs
from memory.summary import DecisionEntry, Flag, StageProgress, Summary, write_summary

__all__ = [
    "DecisionEntry",
    "Flag",
    "LogEntry",
    "OpenQuestion",
    "Program",
    "ProgramDir",
    "RunLine",
    "RunHistory",
    "RunLog",
    "StageProgress",
    "Summary",
    "append_note",
    "list_programs",
    "read_notes",
    "run_context",
    "utc_stamp",
    "write_atomic",
    "write_summary",
]
