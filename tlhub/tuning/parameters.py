"""Parameter selection helpers shared by the strategies."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


def is_under(name: str, modules: tuple[str, ...] | list[str]) -> bool:
    """Whether parameter/module ``name`` lies in one of ``modules`` (dotted prefixes)."""
    return any(name == m or name.startswith(m + ".") for m in modules)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
