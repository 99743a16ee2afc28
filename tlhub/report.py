"""The report of a model scored on labelled data: metrics, per-class scores, the confusion matrix (CSV and
PNG) and the most confident mistakes. ``tlhub run`` writes it for its test split (``eval/test/``),
``tlhub eval`` for any labelled data."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from tlhub.engine import SplitPredictions


@dataclass(frozen=True)
class EvalReport:
    """What one labelled split says about a model."""

    title: str  # e.g. "digits_vit: test split (360 examples)"
    metrics: dict[str, float]
    labels: list[str]  # class names in id order
    per_class: list[dict[str, Any]]  # label, precision, recall, f1, support
    confusion: np.ndarray  # confusion[true, predicted] = examples
    mistakes: list[dict[str, Any]]  # input, true, predicted, score: the most confident wrong predictions first

    def files(self) -> dict[str, str | bytes]:
        """The report's files by name: ``metrics.json``, ``per_class.csv``, ``confusion_matrix.csv`` and
        ``.png``, ``mistakes.csv``."""
        from tlhub import plots

        header = ["true \\ predicted", *self.labels]
        rows = [[label, *map(int, counts)] for label, counts in zip(self.labels, self.confusion, strict=True)]
        return {
            "metrics.json": json.dumps(self.metrics, indent=2) + "\n",
            "per_class.csv": _csv(["label", "precision", "recall", "f1", "support"], self.per_class),
            "confusion_matrix.csv": _csv(header, [dict(zip(header, row, strict=True)) for row in rows]),
            "confusion_matrix.png": plots.confusion_matrix(self.confusion, self.labels, self.title),
            "mistakes.csv": _csv(["input", "true", "predicted", "score"], self.mistakes),
        }

    def write(self, folder: Path) -> None:
        """Write every file into ``folder``, each replaced whole (written beside it, then renamed)."""
        from tlhub.rundir import replace_file

        files = self.files()  # all made before anything is written
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            replace_file(folder / name, content)


def _csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def make_report(
    title: str,
    predictions: SplitPredictions,
    metrics: dict[str, float],
    labels: list[str],
    inputs: list[str],
    mistakes: int = 20,
) -> EvalReport:
    """The report of labelled ``predictions``; ``inputs`` names each example (a path or its text)."""
    import numpy as np
    import torch
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    assert predictions.references is not None
    references = predictions.references.numpy()
    probabilities = torch.softmax(predictions.logits, dim=-1)
    scores, predicted = (t.numpy() for t in probabilities.max(dim=-1))
    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(references, predicted, labels=ids, zero_division=0)
    per_class = [
        {
            "label": name,
            "precision": round(float(p), 4),
            "recall": round(float(r), 4),
            "f1": round(float(f), 4),
            "support": int(s),
        }
        for name, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    ]
    wrong = np.flatnonzero(predicted != references)
    worst = wrong[np.argsort(-scores[wrong], kind="stable")][:mistakes]
    return EvalReport(
        title=title,
        metrics=metrics,
        labels=labels,
        per_class=per_class,
        confusion=confusion_matrix(references, predicted, labels=ids),
        mistakes=[
            {
                "input": inputs[i],
                "true": labels[references[i]],
                "predicted": labels[predicted[i]],
                "score": round(float(scores[i]), 4),
            }
            for i in worst
        ],
    )
