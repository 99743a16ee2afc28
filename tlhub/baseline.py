"""A modality's classical baseline (``Modality.baseline``) fitted and run on a recipe's splits.

The plugin builds the estimator; this module hands it the raw column values exactly as the
encoder receives them (:meth:`tlhub.Modality.collate`), and returns its test predictions as
:class:`tlhub.engine.SplitPredictions`, so that ``engine.score_predictions`` scores them with the same
metrics as the deep models.

torch loads inside the function: ``import tlhub`` imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets
    from transformers import PretrainedConfig

    from tlhub.engine import SplitPredictions
    from tlhub.modality import Modality

# The probability given to a class the estimator never saw in training (log: about -27.6): it cannot be
# predicted, and its cross-entropy stays finite.
UNSEEN_PROBABILITY = 1e-12


def input_values(split: datasets.Dataset, columns: list[str]) -> list[Any]:
    """The split's input values as ``encode`` receives them: one value per example, tuples for several columns."""
    if len(columns) == 1:
        return list(split[columns[0]])
    return list(zip(*(split[column] for column in columns), strict=True))


def fit_baseline(
    modality: Modality,
    columns: list[str],
    config: PretrainedConfig,
    processor: Any,
    options: Any,
    seed: int,
    train: datasets.Dataset,
    test: datasets.Dataset,
    label_column: str,
    labels: list[str],
) -> SplitPredictions:
    """Fit ``modality``'s baseline on ``train`` and predict ``test`` (both after the plugin's ``check_data``).

    The logits are the log of the estimator's class probabilities, one column per name in ``labels``
    (class ids follow their order); a class absent from ``train`` gets :data:`UNSEEN_PROBABILITY`.
    The caller checks that ``modality.baseline`` is set.
    """
    import numpy as np
    import torch

    from tlhub.engine import SplitPredictions

    estimator = modality.call(
        "baseline", columns=columns, config=config, processor=processor, options=options, seed=seed
    )
    estimator.fit(input_values(train, columns), np.asarray(train[label_column]))
    found = np.asarray(estimator.predict_proba(input_values(test, columns)), dtype=np.float32)
    probabilities = np.full((len(test), len(labels)), UNSEEN_PROBABILITY, dtype=np.float32)
    probabilities[:, np.asarray(estimator.classes_, dtype=np.int64)] = np.maximum(found, UNSEEN_PROBABILITY)
    return SplitPredictions(
        logits=torch.log(torch.from_numpy(probabilities)),
        references=torch.as_tensor(np.asarray(test[label_column]), dtype=torch.int64),
    )
