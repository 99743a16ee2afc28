"""Training-time audio augmentation: ``model.options.augment`` of the audio plugin.

Two kinds. Waveform changes (speed, time shift, gain, white noise) are applied by the encoder of training
batches to the decoded float clips, before the feature extractor, with torchaudio and torch; every random
draw comes from torch's generator, which tlhub seeds for each training batch from ``train.seed`` and the
batch's examples: the same recipe trains the same model, after ``--resume`` too.

SpecAugment is transformers' own: the wav2vec2-family models mask spans of their feature-encoder frames
(and feature channels) in training mode when ``config.mask_time_prob`` / ``mask_feature_prob`` are set;
the plugin only sets those config values on the built model (``extend_model``). transformers draws those
masks from numpy's global generator in the forward pass, which tlhub's seed and Accelerate's checkpoints cover.
Evaluation and prediction never augment.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel

# torch and torchaudio load where they are used: `tlhub plugins` imports this module.

Decibels = Annotated[float, Field(ge=-60, le=60)]
SignalToNoise = Annotated[float, Field(ge=-10, le=100)]
SpeedFactor = Annotated[float, Field(ge=0.5, le=2.0)]
# The transformers config keys this section sets, in the order the model card names them.
SPEC_AUGMENT_KEYS = (
    "mask_time_prob",
    "mask_time_length",
    "mask_time_min_masks",
    "mask_feature_prob",
    "mask_feature_length",
)


class AudioAugment(BaseModel):
    """``model.options.augment``: random changes to training clips, each off unless set."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    speed_factors: list[SpeedFactor] | None = Field(
        None,
        min_length=1,
        description="Speed perturbation: each clip is played faster or slower by a factor drawn from this list "
        "(e.g. [0.9, 1.0, 1.1]; two decimals at most), which changes tempo and pitch together "
        "(torchaudio.functional.resample, as torchaudio's speed perturbation does); a slowed clip is cropped "
        "to max_seconds again. null: off.",
    )
    shift_seconds: float = Field(
        0.0,
        ge=0,
        le=60,
        description="Time shift: rotate each clip by a time drawn from [-s, s] seconds; the audio shifted off one "
        "end comes back at the other (circular, torch.roll), so no sound is lost and the length stays. 0: off.",
    )
    gain_db: list[Decibels] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="Gain: scale each clip by [min, max] dB, drawn per clip (torchaudio.functional.gain). No effect "
        "when the feature extractor normalises every clip (do_normalize: true, as wav2vec2's does). null: off.",
    )
    noise_snr_db: list[SignalToNoise] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="White noise at a signal-to-noise ratio drawn from [min, max] dB per clip "
        "(torchaudio.functional.add_noise); e.g. [10, 40]. null: off.",
    )
    mask_time_prob: float | None = Field(
        None,
        ge=0,
        le=1,
        description="SpecAugment over time, set on the model's config (transformers masks spans of the feature "
        "encoder's frames in training only): about this share of the frames is masked; 0 turns off the "
        "checkpoint's own masking. null: the checkpoint's value stands.",
    )
    mask_time_length: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="SpecAugment: frames per time mask (a frame is 20 ms in wav2vec2-base's feature encoder); "
        "null: the checkpoint's value.",
    )
    mask_time_min_masks: int | None = Field(
        None, ge=0, le=1000, description="SpecAugment: time masks per clip at least; null: the checkpoint's value."
    )
    mask_feature_prob: float | None = Field(
        None,
        ge=0,
        le=1,
        description="SpecAugment over feature channels, set on the model's config: about this share of the hidden "
        "channels is zeroed in training; null: the checkpoint's value stands.",
    )
    mask_feature_length: int | None = Field(
        None, ge=1, le=100000, description="SpecAugment: channels per feature mask; null: the checkpoint's value."
    )

    @field_validator("gain_db", "noise_snr_db")
    @classmethod
    def _ordered(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and value[0] > value[1]:
            raise PydanticCustomError("range_order", "write the range as [min, max]: the first value is the larger")
        return value

    @field_validator("speed_factors")
    @classmethod
    def _hundredths(cls, value: list[float] | None) -> list[float] | None:
        # resample's filter is as long as the reduced rate ratio: hundredths keep it at most 200/100.
        if value is not None and any(abs(f * 100 - round(f * 100)) > 1e-6 for f in value):
            raise PydanticCustomError("speed_factor", "speed factors take two decimals at most (e.g. 0.9, 1.05)")
        return value

    def spec_augment(self) -> dict[str, Any]:
        """The transformers config values this section sets (empty when it sets none)."""
        return {key: getattr(self, key) for key in SPEC_AUGMENT_KEYS if getattr(self, key) is not None}

    def waveform_transform(self, rate: int, max_seconds: float) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """``clip -> clip`` for 1-D float clips at ``rate`` Hz, or ``None`` when no waveform change is set."""
        if not (self.speed_factors or self.shift_seconds or self.gain_db or self.noise_snr_db):
            return None  # and torchaudio stays unimported
        import torch
        import torchaudio.functional

        limit = int(max_seconds * rate)

        def uniform(low: float, high: float) -> float:
            return low + (high - low) * float(torch.rand(()))

        def transform(clip: torch.Tensor) -> torch.Tensor:
            if self.speed_factors:
                factor = self.speed_factors[int(torch.randint(len(self.speed_factors), ()))]
                # As torchaudio.functional.speed: read the clip as recorded at factor x rate and resample it to
                # rate; given in hundredths (speed() rounds factor x rate itself, which can make the ratio huge).
                faster, base = round(factor * 100), 100
                divisor = math.gcd(faster, base)
                clip = torchaudio.functional.resample(clip, faster // divisor, base // divisor)[:limit]
            if self.shift_seconds:
                most = int(self.shift_seconds * rate)
                clip = torch.roll(clip, int(torch.randint(-most, most + 1, ())))
            if self.gain_db:
                clip = torchaudio.functional.gain(clip, uniform(*self.gain_db))
            if self.noise_snr_db:
                snr = torch.tensor(uniform(*self.noise_snr_db))
                clip = torchaudio.functional.add_noise(clip, torch.randn_like(clip), snr)
            return clip

        return transform

    def min_training_samples(self, config: PretrainedConfig) -> int:
        """Samples a training batch needs so that transformers can place a time mask (0 when it masks no time).

        transformers refuses a batch shorter than ``mask_time_length`` frames; the encoder pads to this length.
        """
        values = {**config.to_dict(), **self.spec_augment()}
        masks = values.get("apply_spec_augment", True) or self.spec_augment()  # apply() switches it on
        if not (masks and values.get("mask_time_prob", 0) > 0):
            return 0
        return samples_for_frames(config, values.get("mask_time_length", 1))

    def apply(self, model: PreTrainedModel) -> list[str]:
        """Set the SpecAugment config values on ``model`` (adding the mask vector the family learns, when its
        checkpoint had masking off); return the model-card lines of those changes to the model."""
        import torch

        notes = []
        values = self.spec_augment()
        if values:
            model.config.apply_spec_augment = True
            for key, value in values.items():
                setattr(model.config, key, value)
            base = getattr(model, model.base_model_prefix)
            masking = model.config.mask_time_prob > 0 or model.config.mask_feature_prob > 0
            if masking and not hasattr(base, "masked_spec_embed"):
                # What the family's __init__ builds when its config masks: the learned vector masked frames read.
                base.masked_spec_embed = torch.nn.Parameter(torch.empty(model.config.hidden_size).uniform_())
                notes.append("masked_spec_embed added (uniform random): the checkpoint's config had SpecAugment off")
            shown = ", ".join(f"{k} {v}" for k, v in values.items())
            notes.append(f"SpecAugment in training (model.options.augment, set on the saved config): {shown}")
        return notes


def samples_for_frames(config: PretrainedConfig, frames: int) -> int:
    """The fewest samples from which the family's convolutional feature encoder makes ``frames`` frames."""
    samples = frames
    for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride, strict=True))):
        samples = (samples - 1) * stride + kernel
    return samples
