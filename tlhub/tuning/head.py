"""``head``: freeze every copied layer; only the new head trains. Best for very small datasets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from tlhub.tuning.parameters import LearningRate, StrategyOptions, is_under

if TYPE_CHECKING:
    from torch import nn

    from tlhub.modality import Modality


class Options(StrategyOptions):
    # The plugin names the head's modules; a head alone learns fast, so it often wants its own rate.

    learning_rate: LearningRate = None
    cache_features: bool = Field(
        True,
        description="Compute the frozen layers' output once per example (cached on disk by checkpoint, data and "
        "preprocessing) and train the head on it: the same result, many times faster. Used only where it is "
        "exact: the plugin can split its model at the head and the training data is not augmented.",
    )


def check(model: nn.Module, options: Options, modality: Modality) -> list[str]:
    return []


def apply(model: nn.Module, options: Options, modality: Modality) -> nn.Module:
    for name, param in model.named_parameters():
        param.requires_grad_(is_under(name, modality.head(model.config)))
    return model
