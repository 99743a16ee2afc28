"""Parameter selection helpers shared by the strategies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from torch import nn


# A name of something (a module, a split, a label, a file pattern): never empty.
Name = Annotated[str, Field(min_length=1)]


class StrategyOptions(BaseModel):
    """Base of each strategy's ``Options``: as strict as the rest of a recipe (no bool-to-int, finite numbers)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# Every strategy's options block may set its own peak learning rate (a head alone takes larger steps).
LearningRate = Annotated[
    float | None, Field(gt=0, le=1, description="Peak learning rate under this strategy; default: train.learning_rate.")
]


def is_under(name: str, modules: tuple[str, ...] | list[str]) -> bool:
    """Whether parameter/module ``name`` lies in one of ``modules`` (dotted prefixes)."""
    return any(name == m or name.startswith(m + ".") for m in modules)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
