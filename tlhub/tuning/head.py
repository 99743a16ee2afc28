"""``head``: freeze every copied layer; only the new head trains. Best for very small datasets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from tlhub.tuning.parameters import is_under

if TYPE_CHECKING:
    from torch import nn

    from tlhub.modality import Modality


class Options(BaseModel):
    """``head`` takes no options: the plugin names the head's modules."""

    model_config = ConfigDict(extra="forbid")


def check(model: nn.Module, options: Options, modality: Modality) -> list[str]:
    return []


def apply(model: nn.Module, options: Options, modality: Modality) -> nn.Module:
    for name, param in model.named_parameters():
        param.requires_grad_(is_under(name, modality.head_modules))
    return model
