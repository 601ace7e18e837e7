"""`research view`: a researcher's read-only view of runs, from a cell's rate down to the
sentence an evaluator quoted (app.py: the pages; queries.py: what is read; cells.py and item.py:
a cell's items and one item; marks.py: quotes marked in escaped text)."""

from orchestrator.view.app import create_app

__all__ = ["create_app"]
