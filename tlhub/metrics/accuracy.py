"""Accuracy, as an `evaluate` metric module that loads from this file (no Hub access)."""

import datasets
import evaluate
from sklearn.metrics import accuracy_score


class Accuracy(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Share of predictions equal to the reference label.",
            citation="",
            inputs_description="predictions, references: class ids",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(
        self, predictions: list[int], references: list[int], label_names: list[str] | None = None
    ) -> dict[str, float]:
        return {"accuracy": float(accuracy_score(references, predictions))}
