"""Tuning strategies: which parameters of a model with a new head are trained.

Each strategy is a module with an ``Options`` pydantic model (its recipe options, under
``tuning.<name>``), ``check(model, options, modality) -> problems`` (run by ``tlhub validate`` on a
model built on the meta device) and ``apply(model, options, modality) -> model``.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from tlhub.tuning import full, head, lora
from tlhub.tuning.parameters import count_parameters, is_under
from tlhub.tuning.schedule import Schedule, full_schedule

if TYPE_CHECKING:
    from torch import nn

    from tlhub.modality import Modality

__all__ = [
    "STRATEGIES",
    "Schedule",
    "apply_strategy",
    "check_strategy",
    "count_parameters",
    "is_under",
    "strategy_schedule",
]

STRATEGIES: dict[str, ModuleType] = {"full": full, "head": head, "lora": lora}


def apply_strategy(name: str, model: nn.Module, options: object, modality: Modality) -> nn.Module:
    """Apply strategy ``name`` with its options; return the model to train (LoRA wraps it).

    The plugin's fixed modules stay frozen whatever the strategy (under LoRA they are found inside
    peft's wrappers: ``base_model.model.<name>.modules_to_save.default...``).
    """
    fixed = modality.fixed(model.config)
    tuned: nn.Module = STRATEGIES[name].apply(model, options, modality)
    for param_name, param in tuned.named_parameters():
        if any(f".{m}." in f".{param_name}" for m in fixed):
            param.requires_grad_(False)
    return tuned


def check_strategy(name: str, model: nn.Module, options: object, modality: Modality) -> list[str]:
    """Problems with strategy ``name``'s options for ``model``, as ``key.path: message`` lines."""
    return STRATEGIES[name].check(model, options, modality)  # type: ignore[no-any-return]


def strategy_schedule(name: str, model: nn.Module, options: object, modality: Modality) -> Schedule | None:
    """Which parameters train in which epoch and at which rate, for a strategy with a schedule (``full``'s
    ``unfreeze`` and ``layer_decay``); ``None``: every trainable parameter, every epoch, at one rate."""
    if name != "full":
        return None
    return full_schedule(model, options, modality)  # type: ignore[arg-type]
