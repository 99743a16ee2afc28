"""``head``: freeze every copied layer; only the new head trains. Best for very small datasets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from tlhub.tuning.parameters import LearningRate, is_under

if TYPE_CHECKING:
    from torch import nn

    from tlhub.modality import Modality


class Options(BaseModel):
    """The plugin names the head's modules; a head alone learns fast, so it often wants its own rate."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: LearningRate = None


def check(model: nn.Module, options: Options, modality: Modality) -> list[str]:
    return []


def apply(model: nn.Module, options: Options, modality: Modality) -> nn.Module:
    for name, param in model.named_parameters():
        param.requires_grad_(is_under(name, modality.head(model.config)))
    return model
