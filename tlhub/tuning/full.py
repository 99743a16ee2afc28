"""``full``: every layer trains, starting from the pretrained values. Better with more data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from tlhub.errors import RecipeError
from tlhub.tuning.parameters import LearningRate, is_under

if TYPE_CHECKING:
    from torch import nn

    from tlhub.modality import Modality


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    freeze: list[str] = Field(
        default_factory=list,
        description="Module names (dotted prefixes) kept frozen, e.g. a convolutional feature encoder.",
    )
    learning_rate: LearningRate = None


def check(model: nn.Module, options: Options, modality: Modality) -> list[str]:
    """Problems with the options for this model (a model on the meta device will do)."""
    modules = dict(model.named_modules())
    unknown = [m for m in options.freeze if m not in modules]
    if not unknown:
        return []
    candidates = sorted(n for n in modules if n and n.count(".") <= 1)
    return [f"tuning.full.freeze: no module named {', '.join(map(repr, unknown))} (modules: {', '.join(candidates)})"]


def apply(model: nn.Module, options: Options, modality: Modality) -> nn.Module:
    if problems := check(model, options, modality):
        raise RecipeError(problems)
    for name, param in model.named_parameters():
        param.requires_grad_(not is_under(name, options.freeze))
    return model
