"""tlhub plugin ``convnets``: transformers' ResNet and ConvNeXt image classifiers, and the ``bitfit`` strategy.

- ``register_modalities``: ``convnets``, ResNet and ConvNeXt (transformers ``AutoModelForImageClassification``);
- ``register_strategies``: ``bitfit``, which trains the biases (and, by default, the normalization layers'
  scales) beside the new head: a few thousand parameters, for any plugin's models.

Everything heavy (transformers, datasets, PIL) is imported inside the functions: ``tlhub plugins`` imports this
module and must stay fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from io import BytesIO
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

import tlhub


class Options(BaseModel):
    """``model.options`` of this plugin."""

    model_config = ConfigDict(extra="forbid", strict=True)

    image_size: int = Field(224, gt=0, le=4096, description="Image side when the model is built from model.config.")


def load_processor(checkpoint: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoImageProcessor

    # backend="pil": the processor needs no torchvision (and says nothing about it).
    return AutoImageProcessor.from_pretrained(checkpoint, backend="pil", trust_remote_code=trust_remote_code)


def new_processor(config: Any, options: Options | None = None) -> Any:
    from transformers import ConvNextImageProcessorPil

    size = (options or Options()).image_size
    return ConvNextImageProcessorPil(size={"shortest_edge": size}, crop_pct=1.0)


def check_data(split: Any, columns: list[str]) -> tuple[Any, list[str]]:
    """Open every image without decoding its pixels (``Image(decode=False)``): a broken file is a DataError
    naming it, not a traceback later in training."""
    import datasets
    import PIL.Image

    (column,) = columns
    raw = split.select_columns([column]).cast_column(column, datasets.Image(decode=False))
    modes = set()
    for batch in raw.iter(batch_size=1024):
        for item in batch[column]:
            try:
                with PIL.Image.open(BytesIO(item["bytes"]) if item.get("bytes") else item["path"]) as image:
                    image.verify()
                    modes.add(image.mode)
            except Exception as exc:
                where = item.get("path") or "an embedded image"
                raise tlhub.DataError(f"data: image file '{where}' cannot be read ({type(exc).__name__})") from None
    notes = [f"images of mode {', '.join(sorted(modes - {'RGB'}))} converted to RGB"] if modes - {"RGB"} else []
    return split, notes


def make_encoder(processor: Any) -> Callable[..., dict[str, Any]]:
    def encode(images: Sequence[Any]) -> dict[str, Any]:
        return dict(processor(images=[image.convert("RGB") for image in images], return_tensors="pt"))

    return encode


def lora_targets(config: Any) -> tuple[str, ...]:
    """ResNet: every convolution (Conv2d); ConvNeXt: its pointwise layers (Linear)."""
    return ("convolution",) if config.model_type == "resnet" else ("pwconv1", "pwconv2")


class BitFitOptions(tlhub.StrategyOptions):
    """``tuning.bitfit`` of a recipe."""

    norms: bool = Field(True, description="Also train the normalization layers' weights (BatchNorm, LayerNorm).")
    learning_rate: float | None = Field(None, gt=0, le=10, description="Its own rate; null: train.learning_rate.")


NORMS = ("BatchNorm", "LayerNorm", "GroupNorm")


def _bitfit_trains(model: Any, options: BitFitOptions, modality: tlhub.Modality) -> set[str]:
    head = modality.head(model.config)
    names = set()
    for module_name, module in model.named_modules():
        norm = options.norms and type(module).__name__.startswith(NORMS)
        for name, _ in module.named_parameters(prefix=module_name, recurse=False):
            in_head = any(name == h or name.startswith(h + ".") for h in head)
            if in_head or name.endswith(".bias") or norm:
                names.add(name)
    return names


def bitfit(model: Any, options: BitFitOptions, modality: tlhub.Modality) -> Any:
    """BitFit (Ben Zaken et al., 2022): only the biases, the normalization weights (``norms``) and the new head
    train."""
    trains = _bitfit_trains(model, options, modality)
    for name, param in model.named_parameters():
        param.requires_grad_(name in trains)
    return model


def check_bitfit(model: Any, options: BitFitOptions, modality: tlhub.Modality) -> list[str]:
    """A model with neither biases nor (asked for) normalization weights outside the head would train the head
    alone: say so before anything loads."""
    head = modality.head(model.config)
    backbone = [n for n in _bitfit_trains(model, options, modality) if not any(n.startswith(h) for h in head)]
    if backbone:
        return []
    what = (
        "neither biases nor normalization weights" if options.norms else "no biases (and tuning.bitfit.norms is false)"
    )
    return [f"tuning.bitfit: this model has {what} outside its head, so only the head would train; use strategy head"]


@tlhub.hookimpl
def register_strategies(register: Callable[[tlhub.Strategy], None]) -> None:
    register(
        tlhub.Strategy(
            name="bitfit",
            options=BitFitOptions,
            apply=bitfit,
            check=check_bitfit,
            description="biases and normalization weights, besides the new head (BitFit)",
        )
    )


@tlhub.hookimpl
def register_modalities(register: Callable[[tlhub.Modality], None]) -> None:
    register(
        tlhub.Modality(
            name="convnets",
            input_type="image",
            model_types=("resnet", "convnext"),
            auto_model="AutoModelForImageClassification",
            pipeline_task="image-classification",
            head_modules=("classifier",),
            lora_targets=lora_targets,
            load_processor=load_processor,
            new_processor=new_processor,
            check_data=check_data,
            make_encoder=make_encoder,
            options=Options,
            description="ResNet and ConvNeXt image classifiers (transformers AutoModelForImageClassification)",
        )
    )
