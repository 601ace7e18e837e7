"""Human labels of a run's items (`research label`): the sample a researcher labels in the
terminal (sample.py), the session that shows each item blinded and stores each answer
(session.py), what a value of each verdict type may be (values.py), and labels read from a
file (file.py). The analysis sets them against the judges (orchestrator/analysis/calibration.py).
"""

from orchestrator.labels.file import import_labels, read_labels
from orchestrator.labels.session import ItemView, LabelSession, export_labels

__all__ = ["ItemView", "LabelSession", "export_labels", "import_labels", "read_labels"]
