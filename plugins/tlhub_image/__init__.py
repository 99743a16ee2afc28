"""tlhub's image plugin: ViT image classifiers, and scikit-learn's handwritten digits as a data source.

Registered through the ``tlhub`` entry-point group exactly as a third-party plugin would be
(see ``pyproject.toml``). ``model.options.augment`` sets training-time augmentation (``augment.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from io import BytesIO
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

import tlhub
from tlhub_image.augment import ImageAugment
from tlhub_image.baseline import pixel_baseline
from tlhub_image.layers import features, head_logits, layers

if TYPE_CHECKING:
    import datasets
    import PIL.Image
    import torch
    from transformers import PretrainedConfig

# torch, torchvision, transformers and datasets load where they are used: `tlhub plugins` imports this module.


class Options(BaseModel):
    """``model.options`` of the image plugin."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    augment: ImageAugment = Field(
        default_factory=ImageAugment,
        description="Random changes to training images (never to validation, test or prediction); every kind "
        "is off unless set.",
    )


def load_processor(checkpoint: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoImageProcessor

    # The PIL backend needs no torchvision, and matches what the checkpoint was trained with here.
    # trust_remote_code is the recipe's model.trust_remote_code: code shipped with the checkpoint runs only then.
    return AutoImageProcessor.from_pretrained(checkpoint, backend="pil", trust_remote_code=trust_remote_code)


def new_processor(config: PretrainedConfig) -> Any:
    from transformers import ViTImageProcessorPil

    size = config.image_size
    return ViTImageProcessorPil(size={"height": size, "width": size})


def check_plan(config: PretrainedConfig, checkpoint: str | None) -> list[str]:
    """A ViT cuts the image into patches: a patch larger than the image leaves none to read."""
    image, patch = config.image_size, config.patch_size
    if isinstance(image, int) and isinstance(patch, int) and patch > image:
        where = "model.checkpoint" if checkpoint else "model.config"
        return [f"{where}: patch_size {patch} is larger than image_size {image}, so the image has no patches"]
    return []


def check_data(
    split: datasets.Dataset, columns: list[str], config: PretrainedConfig
) -> tuple[datasets.Dataset, list[str]]:
    """Open every image header (cheap: no pixel decoding) to find unreadable files, modes and sizes."""
    import datasets
    import PIL.Image

    (column,) = columns
    raw = split.select_columns([column]).cast_column(column, datasets.Image(decode=False))
    modes: set[str] = set()
    sizes: set[tuple[int, int]] = set()
    for batch in raw.iter(batch_size=1024):
        for item in batch[column]:
            where = item.get("path") or "an embedded image"
            try:
                with PIL.Image.open(BytesIO(item["bytes"]) if item.get("bytes") else item["path"]) as image:
                    image.verify()
                    modes.add(image.mode)
                    sizes.add(image.size)
            except Exception as exc:
                raise tlhub.DataError(
                    f"data: image file '{where}' cannot be read ({type(exc).__name__}: {exc})"
                ) from None
    adaptations = []
    target_mode = "RGB" if config.num_channels == 3 else "L"
    if modes - {target_mode}:
        adaptations.append(
            f"images of mode {', '.join(sorted(modes - {target_mode}))} converted to {target_mode} "
            f"(the model reads {config.num_channels} channel(s))"
        )
    target = (config.image_size, config.image_size)
    if sizes - {target}:
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes - {target})[:5])
        more = f" and {len(sizes) - 5} other sizes" if len(sizes) > 5 else ""
        adaptations.append(f"images of {shown}{more} resized to {target[0]}x{target[1]} (the model's image size)")
    return split, adaptations


def make_encoder(
    processor: Any, config: PretrainedConfig, options: Options | None = None, training: bool = False
) -> Callable[..., dict[str, torch.Tensor]]:
    mode = "RGB" if config.num_channels == 3 else "L"
    augment = options.augment if options is not None and training else ImageAugment()
    transform, mix = augment.image_transform(config), augment.batch_transform(config)

    def encode(images: Sequence[PIL.Image.Image], labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        converted = [image.convert(mode) for image in images]
        if transform is not None:
            converted = [transform(image) for image in converted]
        batch = dict(processor(images=converted, return_tensors="pt"))
        if mix is not None and labels is not None:
            # class ids in, class probabilities (batch x num_labels) out: tlhub trains on them with soft targets
            batch["pixel_values"], batch["labels"] = mix(batch["pixel_values"], labels)
        return batch

    return encode


@functools.cache  # validation peeks at the schema, the run loads: build it once per process
def load_digits() -> datasets.DatasetDict:
    """scikit-learn's 1,797 real 8x8 handwritten digits as grayscale images, in one ``train`` split."""
    import datasets
    import numpy as np
    import PIL.Image
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    # Pixel values are 0..16 (counts of set pixels in 4x4 blocks of the original 32x32 bitmaps).
    pixels = np.round(bunch.images * (255 / 16)).astype(np.uint8)
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(d) for d in range(10)])}
    )
    images = [PIL.Image.fromarray(p) for p in pixels]
    train = datasets.Dataset.from_dict({"image": images, "label": bunch.target.tolist()}, features=features)
    return datasets.DatasetDict({"train": train})


def augments(options: Options | None) -> bool:
    """Whether training batches are randomly augmented: any ``augment`` key set."""
    return options is not None and bool(options.augment.model_dump(exclude_defaults=True))


@tlhub.hookimpl
def register_modalities(register: Callable[[tlhub.Modality], None]) -> None:
    register(
        tlhub.Modality(
            name="image",
            input_type="image",
            model_types=("vit",),
            auto_model="AutoModelForImageClassification",
            pipeline_task="image-classification",
            head_modules=("classifier",),
            # transformers 5 names ViT's attention projections q/k/v/o_proj; LoRA's classic choice is q and v.
            lora_targets=("q_proj", "v_proj"),
            load_processor=load_processor,
            new_processor=new_processor,
            check_plan=check_plan,
            check_data=check_data,
            make_encoder=make_encoder,
            layers=layers,
            features=features,
            head_logits=head_logits,
            augments=augments,
            baseline=pixel_baseline,
            options=Options,
            description="ViT image classifiers (transformers AutoModelForImageClassification)",
        )
    )


@tlhub.hookimpl
def register_sources(register: Callable[[tlhub.Source], None]) -> None:
    register(
        tlhub.Source(
            name="sklearn_digits",
            load=lambda data: load_digits(),  # reads no data_files, load_options or name
            description="scikit-learn's 1,797 real 8x8 grayscale handwritten digits, classes 0-9, one 'train' split",
        )
    )
