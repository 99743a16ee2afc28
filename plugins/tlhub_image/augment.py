"""Training-time image augmentation: ``model.options.augment`` of the image plugin.

Two stages, both torchvision ``transforms.v2``: geometric and colour transforms on each PIL image (after
the mode conversion, before the processor), then mixup or cutmix on the processed ``pixel_values`` batch
with its labels. Every random draw comes from torch's generator, which tlhub seeds for each training batch
from ``train.seed`` and the batch's examples, so the same recipe trains the same model, after ``--resume`` too.
Only the encoder of training batches augments; evaluation and prediction never do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    import PIL.Image
    import torch
    from transformers import PretrainedConfig

# torchvision loads where it is used: `tlhub plugins` imports this module.

Fraction = Annotated[float, Field(gt=0, le=1)]


class ImageAugment(BaseModel):
    """``model.options.augment``: random changes to training images, each off unless set."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    crop_scale: list[Fraction] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="Random resized crop: [min, max] share of the image area kept, cropped at an aspect ratio of "
        "3/4 to 4/3 and resized to the model's image_size (v2.RandomResizedCrop); null: no crop.",
    )
    horizontal_flip: float = Field(
        0.0, ge=0, le=1, description="Probability of mirroring an image left to right (v2.RandomHorizontalFlip)."
    )
    rotation_degrees: float = Field(
        0.0,
        ge=0,
        le=180,
        description="Rotate by an angle drawn from [-d, d] degrees, corners filled black (v2.RandomRotation).",
    )
    brightness: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Colour jitter: brightness scaled by a factor drawn from [1-x, 1+x] (v2.ColorJitter).",
    )
    contrast: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Colour jitter: contrast scaled by a factor drawn from [1-x, 1+x] (v2.ColorJitter).",
    )
    saturation: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Colour jitter: saturation scaled by a factor drawn from [1-x, 1+x]; no effect on grayscale "
        "(v2.ColorJitter).",
    )
    hue: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="Colour jitter: hue shifted by a share of the colour circle drawn from [-x, x]; no effect on "
        "grayscale (v2.ColorJitter).",
    )
    policy: Literal["none", "trivial", "randaugment"] = Field(
        "none",
        description="An automatic policy applied after the transforms above: 'trivial' (v2.TrivialAugmentWide: "
        "one random operation of random strength per image) or 'randaugment' (v2.RandAugment: two operations "
        "of magnitude 9 of 31).",
    )
    mixup_alpha: float = Field(
        0.0,
        ge=0,
        le=10,
        description="Mixup: blend each training batch with itself shifted by one, with a weight drawn from "
        "Beta(alpha, alpha), and the labels alike (v2.MixUp); 0: off. Usual values 0.1-0.4.",
    )
    cutmix_alpha: float = Field(
        0.0,
        ge=0,
        le=10,
        description="Cutmix: paste a box of the shifted batch, of an area share drawn from Beta(alpha, alpha), and mix "
        "the labels by area (v2.CutMix); 0: off. With mixup_alpha too, each batch gets one of the two.",
    )

    @field_validator("crop_scale")
    @classmethod
    def _ordered(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and value[0] > value[1]:
            raise PydanticCustomError("range_order", "write the range as [min, max]: the first value is the larger")
        return value

    def image_transform(self, config: PretrainedConfig) -> Callable[[PIL.Image.Image], PIL.Image.Image] | None:
        """The per-image transforms (PIL in, PIL out), or ``None`` when none is set."""
        jitter = self.brightness or self.contrast or self.saturation or self.hue
        geometric = self.crop_scale is not None or self.horizontal_flip or self.rotation_degrees
        if not (geometric or jitter or self.policy != "none"):
            return None  # and torchvision stays unimported
        from torchvision.transforms import v2

        steps: list[Any] = []
        if self.crop_scale is not None:
            size = config.image_size
            steps.append(
                v2.RandomResizedCrop(size=(size, size) if isinstance(size, int) else size, scale=tuple(self.crop_scale))
            )
        if self.horizontal_flip:
            steps.append(v2.RandomHorizontalFlip(p=self.horizontal_flip))
        if self.rotation_degrees:
            steps.append(v2.RandomRotation(degrees=self.rotation_degrees))
        if jitter:
            steps.append(
                v2.ColorJitter(
                    brightness=self.brightness or None,
                    contrast=self.contrast or None,
                    saturation=self.saturation or None,
                    hue=self.hue or None,
                )
            )
        if self.policy == "trivial":
            steps.append(v2.TrivialAugmentWide())
        elif self.policy == "randaugment":
            steps.append(v2.RandAugment())
        return v2.Compose(steps)

    def batch_transform(
        self, config: PretrainedConfig
    ) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None:
        """Mixup and/or cutmix: ``(pixel_values, class ids) -> (pixel_values, class probabilities)``, or ``None``."""
        if not (self.mixup_alpha or self.cutmix_alpha):
            return None
        from torchvision.transforms import v2

        mixers: list[Any] = []
        if self.mixup_alpha:
            mixers.append(v2.MixUp(alpha=self.mixup_alpha, num_classes=config.num_labels))
        if self.cutmix_alpha:
            mixers.append(v2.CutMix(alpha=self.cutmix_alpha, num_classes=config.num_labels))
        return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)  # type: ignore[no-any-return]
