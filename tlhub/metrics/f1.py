"""Macro-averaged F1 over classes, as an `evaluate` metric module that loads from this file."""

import datasets
import evaluate
from sklearn.metrics import f1_score


class F1(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="F1 of each class, averaged with equal weight per class (macro).",
            citation="",
            inputs_description="predictions, references: class ids",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(
        self, predictions: list[int], references: list[int], label_names: list[str] | None = None
    ) -> dict[str, float]:
        return {"f1": float(f1_score(references, predictions, average="macro"))}
