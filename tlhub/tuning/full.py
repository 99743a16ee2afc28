"""``full``: every layer trains, starting from the pretrained values. Better with more data.

Two schedules refine it, both built on the blocks the plugin names (``Modality.layers``):
``unfreeze`` trains the new head alone for ``head_epochs`` epochs, then unfreezes the backbone (all at
once, or ``layers_per_epoch`` blocks per epoch from the top down), and ``layer_decay`` gives each block a
learning rate that shrinks with its depth below the head (layer-wise learning-rate decay).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from tlhub.errors import RecipeError
from tlhub.tuning.parameters import LearningRate, Name, StrategyOptions, is_under

if TYPE_CHECKING:
    from torch import nn

    from tlhub.modality import Modality


class Unfreeze(StrategyOptions):
    head_epochs: int = Field(
        ge=1,
        le=1_000_000,
        description="Epochs that train only the new head (the copied layers frozen, as under `head`) before the "
        "backbone unfreezes.",
    )
    layers_per_epoch: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="After head_epochs, unfreeze this many of the plugin's blocks per epoch, from the top down; "
        "null: the whole backbone at once.",
    )


class Options(StrategyOptions):
    unfreeze: Unfreeze | None = Field(
        None,
        description="Gradual unfreezing: head only first, then the backbone (needs a plugin that names its layers).",
    )
    layer_decay: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Layer-wise learning-rate decay: the head (and whatever the plugin's blocks do not hold) "
        "trains at the peak rate, the top block at rate x decay, the next at x decay^2, down to the "
        "embeddings; null (or 1): one rate for every layer.",
    )
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
    return _layer_problems(model, options, modality)


def _layer_problems(model: nn.Module, options: Options, modality: Modality) -> list[str]:
    """The schedules need the plugin's blocks, and the blocks must name modules the model has."""
    asked = [key for key in ("unfreeze", "layer_decay") if getattr(options, key) is not None]
    if not asked:
        return []
    blocks = modality.blocks(model.config)
    if not blocks:
        return [
            f"tuning.full.{key}: plugin '{modality.name}' names no layers (Modality.layers) to unfreeze or decay "
            "by depth; unset it, or use a plugin that does"
            for key in asked
        ]
    names = {name for name, _ in model.named_modules()} | {name for name, _ in model.named_parameters()}
    if missing := [name for block in blocks for name in block if name not in names]:
        return [
            f"tuning.full.{asked[0]}: plugin '{modality.name}' names layers this model "
            f"does not have ({', '.join(missing[:3])}); a bug of the plugin: report it to its authors"
        ]
    return []


def apply(model: nn.Module, options: Options, modality: Modality) -> nn.Module:
    if problems := check(model, options, modality):
        raise RecipeError(problems)
    for name, param in model.named_parameters():
        param.requires_grad_(not is_under(name, options.freeze))
    return model
