"""``head``: freeze every copied layer; only the new head trains. Best for very small datasets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tlhub.tuning.parameters import LearningRate, StrategyOptions, is_under

if TYPE_CHECKING:
    from torch import nn

    from tlhub.modality import Modality


class Options(StrategyOptions):
    # The plugin names the head's modules; a head alone learns fast, so it often wants its own rate.

    learning_rate: LearningRate = None


def check(model: nn.Module, options: Options, modality: Modality) -> list[str]:
    return []


def apply(model: nn.Module, options: Options, modality: Modality) -> nn.Module:
    for name, param in model.named_parameters():
        param.requires_grad_(is_under(name, modality.head(model.config)))
    return model
