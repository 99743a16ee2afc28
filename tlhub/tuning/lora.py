"""``lora``: low-rank adapters (peft) on the attention projections; the new head trains in full."""

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


def check(model: nn.Module, options: Options, modality: Modality) -> list[str]:
    """Problems with the options for this model (a model on the meta device will do).

    Adapters go on the backbone only: the head trains in full, so a target found only in the head
    would adapt nothing.
    """
    from torch import nn

    head = modality.head(model.config)
    linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    backbone = {n.rsplit(".", 1)[-1] for n in linear if not is_under(n, head)}
    in_head = {n.rsplit(".", 1)[-1] for n in linear if is_under(n, head)} - backbone
    targets = options.target_modules or list(modality.targets(model.config))
    missing = [t for t in targets if t not in backbone]
    if not missing:
        return []
    where = [f"{t!r} is in the new head ({', '.join(head)}), which trains in full" for t in missing if t in in_head]
    absent = [repr(t) for t in missing if t not in in_head]
    reasons = where + ([f"{', '.join(absent)} not in the model"] if absent else [])
    return [
        f"tuning.lora.target_modules: {'; '.join(reasons)} (candidate linear modules: {', '.join(sorted(backbone))})"
    ]


def apply(model: nn.Module, options: Options, modality: Modality) -> nn.Module:
    from peft import LoraConfig, get_peft_model
    from torch import nn

    if problems := check(model, options, modality):
        raise RecipeError(problems)
    head = list(modality.head(model.config))
    config = LoraConfig(
        r=options.r,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=options.target_modules or list(modality.targets(model.config)),
        # The head's own layers (a pooling layer may have attention projections too) get no adapter.
        exclude_modules=[n for n, m in model.named_modules() if isinstance(m, nn.Linear) and is_under(n, head)],
        # The new head is trained in full and saved with the adapter, so a reloaded adapter predicts
        # exactly what the trained model did.
        modules_to_save=head,
    )
    return get_peft_model(model, config)
