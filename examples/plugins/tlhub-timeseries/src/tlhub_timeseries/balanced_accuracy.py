"""Balanced accuracy, an ``evaluate`` metric module: the mean of each class's recall.

Plain accuracy rewards always answering the common class; on time series, where the interesting class
(a fault, an arrhythmia) is often rare, this one does not. tlhub loads the module from its path, offline.
"""

import datasets
import evaluate
from sklearn.metrics import balanced_accuracy_score


class BalancedAccuracy(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="mean recall over the classes present in the references",
            citation="",
            inputs_description="predictions and references: class ids",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, label_names=None):  # type: ignore[no-untyped-def]
        return {"balanced_accuracy": float(balanced_accuracy_score(references, predictions))}
