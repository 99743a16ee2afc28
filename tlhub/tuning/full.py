"""``full``: every layer trains, starting from the pretrained values. Better with more data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from tlhub.errors import RecipeError
from tlhub.tuning.parameters import LearningRate, Name, StrategyOptions, is_under

if TYPE_CHECKING:
    from torch import nn

    from tlhub.modality import Modality


class Options(StrategyOptions):
    freeze: list[Name] = Field(
        default_factory=list,
        description="Module names (dotted prefixes) kept frozen, e.g. a convolutional feature encoder; "
        "never the new head.",
    )
    learning_rate: LearningRate = None

    @field_validator("freeze")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if repeated := sorted({m for m in value if value.count(m) > 1}):
            raise PydanticCustomError("duplicates", "{m} listed more than once", {"m": ", ".join(repeated)})
        return value


def check(model: nn.Module, options: Options, modality: Modality) -> list[str]:
    """Problems with the options for this model (a model on the meta device will do)."""
    modules = dict(model.named_modules())
    unknown = [m for m in options.freeze if m not in modules]
    if unknown:
        candidates = sorted(n for n in modules if n and n.count(".") <= 1)
        return [
            f"tuning.full.freeze: no module named {', '.join(map(repr, unknown))} (modules: {', '.join(candidates)})"
        ]
    head = modality.head(model.config)
    if in_head := [m for m in options.freeze if any(is_under(h, [m]) or is_under(m, [h]) for h in head)]:
        return [
            f"tuning.full.freeze: {', '.join(map(repr, in_head))} is (or holds) the new head "
            f"({', '.join(head)}), which must train"
        ]
    return []


def apply(model: nn.Module, options: Options, modality: Modality) -> nn.Module:
    if problems := check(model, options, modality):
        raise RecipeError(problems)
    for name, param in model.named_parameters():
        param.requires_grad_(not is_under(name, options.freeze))
    return model
