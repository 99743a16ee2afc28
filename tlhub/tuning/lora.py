"""``lora``: low-rank adapters (peft) on the plugin's target layers; the new head trains in full.

Any layer type peft adapts can be a target: linear layers (``nn.Linear``, transformers' ``Conv1D``),
convolutions (``nn.Conv1d``, ``nn.Conv2d``, ``nn.Conv3d``) and embeddings (``nn.Embedding``).
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


class Options(StrategyOptions):
    r: int = Field(8, gt=0, le=4096, description="Rank of the update matrices: more capacity, more parameters.")
    alpha: int = Field(
        16, gt=0, le=65_536, description="Scaling numerator (lora_alpha); the update is scaled by alpha/r."
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: list[Name] | None = Field(
        None,
        min_length=1,
        description="Module names (suffixes) that get adapters; default (unset): the plugin's attention "
        "projections. An empty list would adapt nothing.",
    )
    learning_rate: LearningRate = None

    @field_validator("target_modules")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value and (repeated := sorted({m for m in value if value.count(m) > 1})):
            raise PydanticCustomError("duplicates", "{m} listed more than once", {"m": ", ".join(repeated)})
        return value


def adaptable(module: nn.Module) -> str | None:
    """The kind of layer peft's LoRA adapts, as it is named in messages, or ``None``."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    kinds = (nn.Linear, Conv1D, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)
    return type(module).__name__ if isinstance(module, kinds) else None


def _short(name: str) -> str:
    """How a target names a module: its last part, with its parent's for a numbered one (``classifier.1``)."""
    parts = name.split(".")
    return ".".join(parts[-2:]) if parts[-1].isdigit() and len(parts) > 1 else parts[-1]


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)  # peft's own rule for target_modules


def check(model: nn.Module, options: Options, modality: Modality) -> list[str]:
    """Problems with the options for this model (a model on the meta device will do).

    Adapters go on the backbone only: the head trains in full, so a target found only in the head
    would adapt nothing.
    """
    head = modality.head(model.config)
    layers = {n: kind for n, m in model.named_modules() if (kind := adaptable(m))}
    backbone = {n: kind for n, kind in layers.items() if not is_under(n, head)}
    targets = options.target_modules or list(modality.targets(model.config))
    missing = [t for t in targets if not any(_matches(n, t) for n in backbone)]
    if not missing:
        return []
    in_head = [t for t in missing if any(_matches(n, t) for n in layers)]
    where = [f"{t!r} is in the new head ({', '.join(head)}), which trains in full" for t in in_head]
    absent = [repr(t) for t in missing if t not in in_head]
    reasons = where + ([f"{', '.join(absent)} not in the model's adaptable layers"] if absent else [])
    by_kind: dict[str, set[str]] = {}
    for name, kind in backbone.items():
        by_kind.setdefault(kind, set()).add(_short(name))
    candidates = "; ".join(f"{kind}: {', '.join(sorted(names))}" for kind, names in sorted(by_kind.items()))
    key = "tuning.lora.target_modules"
    if options.target_modules is None:
        key += f" (unset, so the {modality.name!r} plugin's lora_targets {list(targets)})"
    return [f"{key}: {'; '.join(reasons)} (candidates by layer type: {candidates or 'none'})"]


def apply(model: nn.Module, options: Options, modality: Modality) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    if problems := check(model, options, modality):
        raise RecipeError(problems)
    head = list(modality.head(model.config))
    config = LoraConfig(
        r=options.r,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=options.target_modules or list(modality.targets(model.config)),
        # The head's own layers (a pooling layer may have attention projections too) get no adapter.
        exclude_modules=[n for n, m in model.named_modules() if adaptable(m) and is_under(n, head)],
        # The new head is trained in full and saved with the adapter, so a reloaded adapter predicts
        # exactly what the trained model did.
        modules_to_save=head,
    )
    return get_peft_model(model, config)
