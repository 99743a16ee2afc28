"""Metrics as `evaluate` modules shipped with tlhub, so they load offline.

``evaluate.load("accuracy")`` fetches a script from the Hub; ``evaluate.load(path)`` of a local module
does not. Each file here is such a module; ``METRICS`` maps a recipe's metric name to it. Every module
takes ``label_names`` (class names in id order) at ``compute``, for per-class scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import evaluate

_HERE = Path(__file__).parent
METRICS: dict[str, Path] = {
    "accuracy": _HERE / "accuracy.py",
    "f1": _HERE / "f1.py",  # macro: every class weighs the same
    "f1_per_class": _HERE / "f1_per_class.py",  # f1_<label> for each class
}


def load_metrics(names: list[str], experiment_id: str = "tlhub") -> evaluate.CombinedEvaluations:
    """The named metrics combined into one, computed in memory (no cache files between processes)."""
    import evaluate

    return evaluate.combine(
        [evaluate.load(str(METRICS[n]), keep_in_memory=True, experiment_id=experiment_id) for n in names]
    )
