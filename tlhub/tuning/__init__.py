"""Tuning strategies: which parameters of a model with a new head are trained.

A :class:`Strategy` is registered by a plugin through the ``register_strategies`` hook, as tlhub registers
its own ``head``, ``full`` and ``lora`` (``tlhub/builtins.py``, from the modules here). It holds an ``options``
pydantic model (its recipe options, under ``tuning.<name>``), ``apply(model, options, modality) -> model``,
and optionally ``check(model, options, modality) -> problems`` (run by ``tlhub validate`` on a model built on
the meta device) and ``schedule(model, options, modality) -> Schedule | None`` (which parameters train in
which epoch, at which rate).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from tlhub.tuning import full, head, lora
from tlhub.tuning.parameters import StrategyOptions, count_parameters, is_under
from tlhub.tuning.schedule import Schedule, full_schedule

if TYPE_CHECKING:
    from pydantic import BaseModel
    from torch import nn

    from tlhub.modality import Modality

__all__ = [
    "STRATEGIES",
    "Schedule",
    "Strategy",
    "StrategyOptions",
    "apply_strategy",
    "check_strategy",
    "count_parameters",
    "full_schedule",
    "is_under",
    "strategy_schedule",
]

# The built-in strategies' modules: their Options are the recipe's typed tuning.head/full/lora blocks.
STRATEGIES: dict[str, ModuleType] = {"full": full, "head": head, "lora": lora}


@dataclass(frozen=True)
class Strategy:
    """A tuning strategy a recipe can name in ``tuning.strategy``; its options go under ``tuning.<name>``.

    Attributes:
        name: the name recipes use.
        options: a pydantic model of its options (strict; every field with a default, so the block may be
            left out). A field ``learning_rate`` (float or null) is the strategy's own rate.
        apply: ``apply(model, options, modality) -> model``: set ``requires_grad`` (or wrap the model) so that
            what should train trains; the plugin's head (``modality.head(model.config)``) usually does.
        check: ``check(model, options, modality) -> list[str]``: problems, as ``tuning.<name>.<key>: ...``
            lines, found on a model built on the meta device (no weights), before anything heavy loads.
        schedule: ``schedule(model, options, modality) -> Schedule | None``: per-epoch groups and rates.
        description: one line for ``tlhub plugins``.
        plugin: set by tlhub: the plugin that registered it.
    """

    name: str
    options: type[BaseModel]
    apply: Callable[..., Any]
    check: Callable[..., list[str]] | None = None
    schedule: Callable[..., Schedule | None] | None = None
    description: str = ""
    plugin: str = ""


def strategy_problems(item: object) -> list[str]:
    """Why a registered object is not a usable :class:`Strategy` (empty when it is)."""
    from pydantic import BaseModel

    if not isinstance(item, Strategy):
        return [f"registered {item!r}; expected a tlhub.Strategy"]
    found = []
    if not item.name.isidentifier():
        found.append(f"strategy {item.name!r}: the name must be a word, as it is a recipe key (tuning.<name>)")
    if item.name in ("strategy",):
        found.append(f"strategy {item.name!r}: the name is taken by the recipe's tuning.strategy")
    if not (isinstance(item.options, type) and issubclass(item.options, BaseModel)):
        found.append(f"strategy '{item.name}': options is {item.options!r}, not a pydantic model")
    for name in ("apply", "check", "schedule"):
        function = getattr(item, name)
        if (function is not None or name == "apply") and not callable(function):
            found.append(f"strategy '{item.name}': {name} is {function!r}, not a function")
    return found


def _strategy(name: str) -> Strategy:
    from tlhub.plugins import strategies

    return strategies()[name]


def apply_strategy(name: str, model: nn.Module, options: object, modality: Modality) -> nn.Module:
    """Apply strategy ``name`` with its options; return the model to train (LoRA wraps it).

    The plugin's fixed modules stay frozen whatever the strategy (under LoRA they are found inside
    peft's wrappers: ``base_model.model.<name>.modules_to_save.default...``).
    """
    fixed = modality.fixed(model.config)
    tuned: nn.Module = _strategy(name).apply(model, options, modality)
    for param_name, param in tuned.named_parameters():
        if any(f".{m}." in f".{param_name}" for m in fixed):
            param.requires_grad_(False)
    return tuned


def check_strategy(name: str, model: nn.Module, options: object, modality: Modality) -> list[str]:
    """Problems with strategy ``name``'s options for ``model``, as ``key.path: message`` lines."""
    check = _strategy(name).check
    return [] if check is None else list(check(model, options, modality))


def strategy_schedule(name: str, model: nn.Module, options: object, modality: Modality) -> Schedule | None:
    """Which parameters train in which epoch and at which rate, for a strategy with a schedule (``full``'s
    ``unfreeze`` and ``layer_decay``); ``None``: every trainable parameter, every epoch, at one rate."""
    schedule = _strategy(name).schedule
    return None if schedule is None else schedule(model, options, modality)
