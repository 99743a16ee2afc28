"""tlhub's audio plugin: wav2vec2-family audio classifiers (wav2vec2, HuBERT, WavLM), and audio sources.

Registered through the ``tlhub`` entry-point group exactly as a third-party plugin would be (see
``pyproject.toml``). Sources: ``audio_files`` (any folder of audio files, labels read from the file
names) and ``espeak_words`` (a spoken-word corpus synthesised with espeak-ng, for supervised pretraining).

Decoding: the ``datasets`` ``Audio`` feature's own decoder, torchcodec (FFmpeg), one file at a time so
that a file that does not decode is named. Every clip is mixed down to mono and resampled with torchaudio
to the feature extractor's rate, once, before training (``check_data``); batches are padded per batch.
``model.options.augment`` sets training-time augmentation (``augment.py``): waveform changes in the
training encoder, SpecAugment through the model's config.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

import tlhub
from tlhub.errors import DataError
from tlhub_audio import espeak, files
from tlhub_audio.augment import AudioAugment, samples_for_frames
from tlhub_audio.baseline import mfcc_baseline
from tlhub_audio.layers import features, head_logits, layers

if TYPE_CHECKING:
    import datasets
    import numpy as np
    import torch
    from transformers import PretrainedConfig

# torch, transformers and datasets load where they are used: `tlhub plugins` imports this module.

SILENCE = 1e-4  # peak amplitude below which a clip counts as silent (-80 dBFS)


class Options(BaseModel):
    """``model.options`` of the audio plugin."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    max_seconds: float = Field(
        2.0, gt=0, le=3600, description="Longest clip fed to the model; longer clips are cropped (and counted)."
    )
    bad_audio: Literal["fail", "skip"] = Field(
        "fail",
        description="A file that does not decode, or an empty or silent clip: stop naming it, or skip it and count.",
    )
    augment: AudioAugment = Field(
        default_factory=AudioAugment,
        description="Random changes to training clips (never to validation, test or prediction); every kind is "
        "off unless set (SpecAugment: the checkpoint's own config values stand unless set).",
    )


def load_processor(checkpoint: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoFeatureExtractor

    # trust_remote_code is the recipe's model.trust_remote_code: code shipped with the checkpoint runs only then.
    return AutoFeatureExtractor.from_pretrained(checkpoint, trust_remote_code=trust_remote_code)


def new_processor(config: PretrainedConfig) -> Any:
    from transformers import Wav2Vec2FeatureExtractor

    # Models whose feature encoder normalises per layer read padded batches exactly (with the mask);
    # group-norm ones are trained without a mask, as transformers documents for wav2vec2-base.
    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=config.feat_extract_norm == "layer",
    )


def check_plan(config: PretrainedConfig, processor: Any, options: Options) -> list[str]:
    """SpecAugment's spans set in the options must fit: transformers refuses, mid-training, a time mask
    longer than a batch's frames and a feature mask wider than the hidden size."""
    spec = options.augment.spec_augment()
    if not spec:
        return []
    values = {**config.to_dict(), **spec}
    problems = []
    if values.get("mask_time_prob", 0) > 0:
        length = values.get("mask_time_length", 1)
        needed = samples_for_frames(config, length) / processor.sampling_rate
        if needed > options.max_seconds:
            problems.append(
                f"model.options.augment.mask_time_length: a time mask of {length} frames needs clips of "
                f"{needed:.3f} s at least, longer than model.options.max_seconds {options.max_seconds}"
            )
    if values.get("mask_feature_prob", 0) > 0 and values.get("mask_feature_length", 1) > config.hidden_size:
        problems.append(
            f"model.options.augment.mask_feature_length: {values['mask_feature_length']} channels is more than "
            f"the model's hidden_size {config.hidden_size}"
        )
    return problems


def _decode(item: dict[str, Any]) -> tuple[torch.Tensor, int]:
    """``(channels x samples, rate)`` of one undecoded ``Audio`` value (a path and/or bytes)."""
    import torch
    from torchcodec.decoders import AudioDecoder

    decoder = AudioDecoder(item["bytes"] if item.get("bytes") else item["path"])
    try:
        samples = decoder.get_all_samples()
    except RuntimeError as exc:
        if "No audio frames were decoded" in str(exc):  # torchcodec's word for a file with zero samples
            return torch.zeros(1, 0), decoder.metadata.sample_rate or 0
        raise
    return samples.data, samples.sample_rate


def check_data(
    split: datasets.Dataset, columns: list[str], processor: Any, options: Options
) -> tuple[datasets.Dataset, list[str]]:
    """Decode every clip once: refuse (or skip) what does not decode or is silent, mix down to mono,
    resample to the extractor's rate, crop to ``max_seconds``. The column then holds float arrays."""
    import datasets
    import numpy as np
    import torchaudio.functional

    (column,) = columns
    rate = processor.sampling_rate
    raw = split.cast_column(column, datasets.Audio(decode=False))
    arrays: list[np.ndarray] = []
    keep: list[int] = []
    skipped: list[str] = []
    rates: set[int] = set()
    stereo = cropped = 0
    limit = int(options.max_seconds * rate)
    for index, item in enumerate(raw[column]):
        where = item.get("path") or f"example {index} (embedded bytes)"
        try:
            waveform, source_rate = _decode(item)
        except Exception as exc:
            problem = f"audio file '{where}' cannot be decoded ({type(exc).__name__}: {str(exc).splitlines()[0]})"
            if options.bad_audio == "fail":
                raise DataError(f"data: {problem}; set model.options.bad_audio: skip to skip such files") from None
            skipped.append(problem)
            continue
        if waveform.numel() == 0 or waveform.abs().max() < SILENCE:
            problem = f"audio file '{where}' is {'empty' if waveform.numel() == 0 else 'silent'}"
            if options.bad_audio == "fail":
                raise DataError(f"data: {problem}; set model.options.bad_audio: skip to skip such clips")
            skipped.append(problem)
            continue
        if waveform.shape[0] > 1:
            stereo += 1
            waveform = waveform.mean(dim=0, keepdim=True)
        if source_rate != rate:
            rates.add(source_rate)
            waveform = torchaudio.functional.resample(waveform, source_rate, rate)
        if waveform.shape[1] > limit:
            cropped += 1
            waveform = waveform[:, :limit]
        arrays.append(waveform[0].numpy().astype(np.float32))
        keep.append(index)

    notes = []
    if skipped:
        notes.append(f"{len(skipped)} clips skipped (model.options.bad_audio: skip), first: {skipped[0]}")
    if stereo:
        notes.append(f"{stereo} multi-channel clips mixed down to mono")
    if rates:
        notes.append(f"clips at {', '.join(f'{r} Hz' for r in sorted(rates))} resampled to {rate} Hz (torchaudio)")
    if cropped:
        notes.append(f"{cropped} clips longer than model.options.max_seconds {options.max_seconds} s cropped")
    prepared = split.select(keep).remove_columns(column)
    feature = datasets.Sequence(datasets.Value("float32"))
    return prepared.add_column(column, arrays, feature=feature), notes  # type: ignore[arg-type]


def make_encoder(
    processor: Any, config: PretrainedConfig | None = None, options: Options | None = None, training: bool = False
) -> Callable[[Sequence[Any]], dict[str, torch.Tensor]]:
    import numpy as np

    options = options if options is not None else Options()
    rate = processor.sampling_rate
    transform = options.augment.waveform_transform(rate, options.max_seconds) if training else None
    # transformers' SpecAugment refuses a training batch shorter than one time mask: pad such a batch up to it.
    shortest = options.augment.min_training_samples(config) if training and config is not None else 0

    def encode(clips: Sequence[Any]) -> dict[str, torch.Tensor]:
        # Padded to the longest clip of the batch; the mask (for extractors that return one) lets the
        # model pool over the real frames only.
        arrays = [np.asarray(clip, dtype=np.float32) for clip in clips]
        if transform is not None:
            import torch

            arrays = [transform(torch.tensor(array)).numpy() for array in arrays]
        longest = max(len(array) for array in arrays)
        padding = {"padding": "max_length", "max_length": shortest} if longest < shortest else {"padding": True}
        return dict(processor(arrays, sampling_rate=rate, return_tensors="pt", **padding))

    return encode


def extend_model(model: Any, options: Options | None) -> list[str]:
    """Set SpecAugment on the model's config when the options ask; the model-card notes of augmentation."""
    return options.augment.apply(model) if options is not None else []


def augments(options: Options | None) -> bool:
    """Whether training batches are randomly augmented: any ``augment`` key set."""
    return options is not None and bool(options.augment.model_dump(exclude_defaults=True))


@tlhub.hookimpl
def register_modalities(register: Callable[[tlhub.Modality], None]) -> None:
    register(
        tlhub.Modality(
            name="audio",
            input_type="audio",
            model_types=("wav2vec2", "hubert", "wavlm"),
            auto_model="AutoModelForAudioClassification",
            pipeline_task="audio-classification",
            # The frame projection and the classifier; the model mean-pools the projected frames in between.
            head_modules=("projector", "classifier"),
            # transformers 5 names the transformer's attention projections q/k/v/out_proj in all three.
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
            baseline=mfcc_baseline,
            extend_model=extend_model,
            options=Options,
            description="wav2vec2, HuBERT and WavLM audio classifiers (transformers AutoModelForAudioClassification)",
        )
    )


@tlhub.hookimpl
def register_sources(register: Callable[[tlhub.Source], None]) -> None:
    register(
        tlhub.Source(
            name="audio_files",
            load=files.load_audio_files,
            reads=("data_files", "load_options"),
            options=files.Options,
            description="Audio files matched by data.data_files (globs per split), labels from the file names "
            "(data.load_options.label_pattern) or their folders",
        )
    )
    register(
        tlhub.Source(
            name="espeak_words",
            load=espeak.load_espeak_words,
            reads=("load_options",),
            options=espeak.Options,
            description="English words (no digit names) spoken by espeak-ng in many voices, speeds and pitches; "
            "synthesised once into a cache folder (needs the espeak-ng program)",
        )
    )
