"""F1 of each class (``f1_<label>``), as an `evaluate` metric module: the rare class's score on its own."""

import datasets
import evaluate
from sklearn.metrics import f1_score


class F1PerClass(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="F1 of each class, one score per class, named f1_<label name>.",
            citation="",
            inputs_description="predictions, references: class ids; label_names: class names in id order",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(
        self, predictions: list[int], references: list[int], label_names: list[str] | None = None
    ) -> dict[str, float]:
        names = label_names or [str(i) for i in sorted(set(references) | set(predictions))]
        scores = f1_score(references, predictions, labels=list(range(len(names))), average=None, zero_division=0)
        return {f"f1_{name}": float(score) for name, score in zip(names, scores, strict=True)}
