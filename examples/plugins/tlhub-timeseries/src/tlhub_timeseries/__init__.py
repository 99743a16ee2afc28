"""tlhub plugin ``patchtst``: a new input type (``timeseries``), PatchTST classifiers, and balanced accuracy.

- ``register_input_types``: ``timeseries``, a ``datasets`` column of numeric lists (one channel) or of per-step
  lists (several channels), read by models whose main input is ``past_values``;
- ``register_modalities``: ``patchtst``, transformers' ``PatchTSTForClassification`` (its head sized by
  ``num_targets``, its scores in ``prediction_logits``), with a saved :class:`SeriesProcessor`;
- ``register_metrics``: ``balanced_accuracy`` (the mean recall of the classes), for any recipe.

Everything heavy (transformers, datasets, numpy) is imported inside the functions: ``tlhub plugins`` imports this
module and must stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

import tlhub

__version__ = "0.1.0"
BATCH = 1024  # rows read at once while checking a split


class Options(BaseModel):
    """``model.options`` of this plugin."""

    model_config = ConfigDict(extra="forbid", strict=True)

    fit: Literal["crop", "resample"] = Field(
        "crop",
        description="How a series meets the model's window (config.context_length): crop keeps the last steps and "
        "pads short series with unobserved steps (the time scale is kept); resample interpolates every series to "
        "the window.",
    )


def _processor(config: Any, options: Options | None) -> Any:
    from tlhub_timeseries.processor import SeriesProcessor

    fit = (options or Options()).fit
    return SeriesProcessor(context_length=config.context_length, num_channels=config.num_input_channels, fit=fit)


def load_processor(checkpoint: str, config: Any, options: Options | None) -> Any:
    """The processor saved with a run; a PatchTST checkpoint without one (the Hub's) reads its window and
    channels from the config. ``model.options.fit``, when the recipe sets it, wins."""
    from tlhub_timeseries.processor import SeriesProcessor

    if not (Path(checkpoint) / "preprocessor_config.json").is_file():
        return _processor(config, options)
    processor = SeriesProcessor.from_pretrained(checkpoint)
    if options is not None and "fit" in options.model_fields_set:
        processor.fit = options.fit
    return processor


def new_processor(config: Any, options: Options | None) -> Any:
    return _processor(config, options)


def adapt_config(config: Any) -> None:
    """PatchTST sizes its classification head from ``num_targets``, not ``num_labels``."""
    config.num_targets = config.num_labels


def check_plan(config: Any, checkpoint: str | None) -> list[str]:
    if config.context_length < config.patch_length:
        where = "model.checkpoint" if checkpoint else "model.config.context_length"
        return [f"{where}: context_length {config.context_length} is shorter than one patch ({config.patch_length})"]
    return []


def check_data(split: Any, columns: list[str], processor: Any) -> tuple[Any, list[str]]:
    """Every series read as numbers, without training on it: a row that is empty, ragged, not finite, entirely
    missing, or with another number of channels than the checkpoint reads is a DataError naming its row."""
    import numpy as np

    (column,) = columns
    rows = split.select_columns([column, tlhub.INDEX_COLUMN])
    longer = shorter = missing = 0
    for batch in rows.iter(batch_size=BATCH):
        for number, series in zip(batch[tlhub.INDEX_COLUMN], batch[column], strict=True):
            where = f"data: row {number} of column '{column}'"
            if series is None:
                raise tlhub.DataError(f"{where} is missing (null); every row needs a series")
            try:
                values = processor.array(series)
            except (ValueError, TypeError):
                raise tlhub.DataError(
                    f"{where} is not a list of numbers or of equally long per-step lists of numbers"
                ) from None
            if values.ndim != 2 or len(values) == 0:
                raise tlhub.DataError(f"{where} is empty or nested deeper than steps x channels")
            if values.shape[1] != processor.num_channels:
                raise tlhub.DataError(
                    f"{where} has {values.shape[1]} channel(s) per step; the checkpoint reads "
                    f"{processor.num_channels} (config.num_input_channels)"
                )
            if np.isinf(values).any():
                raise tlhub.DataError(f"{where} holds an infinite value; only numbers and null (missing) are valid")
            if np.isnan(values).all():
                raise tlhub.DataError(f"{where} has no observed value (every value is null or NaN)")
            missing += bool(np.isnan(values).any())
            longer += len(values) > processor.context_length
            shorter += len(values) < processor.context_length
    window = processor.context_length
    notes = []
    if processor.fit == "resample" and (longer or shorter):
        notes.append(f"{longer + shorter} series resampled to {window} steps by linear interpolation")
    else:
        if longer:
            notes.append(f"{longer} series longer than {window} steps: their last {window} steps kept")
        if shorter:
            notes.append(f"{shorter} series shorter than {window} steps: padded at the start with unobserved steps")
    if missing:
        notes.append(f"{missing} series with missing values (null or NaN), marked unobserved")
    return split, notes


def make_encoder(processor: Any) -> Callable[[list[Any]], dict[str, Any]]:
    def encode(series: list[Any]) -> dict[str, Any]:
        return dict(processor(series, return_tensors="pt"))

    return encode


def baseline(processor: Any, seed: int) -> Any:
    """Logistic regression on each series' statistics and spectrum (``tlhub compare``'s ``baseline``)."""
    from tlhub_timeseries.classical import baseline as make

    return make(processor, seed)


def layers(config: Any) -> tuple[str | tuple[str, ...], ...]:
    """The patch embedding with the positions, then each encoder layer (for gradual unfreezing)."""
    blocks = [f"model.encoder.layers.{i}" for i in range(config.num_hidden_layers)]
    return (("model.encoder.embedder", "model.encoder.positional_encoder"), *blocks)


@tlhub.hookimpl
def register_input_types(register: Callable[[tlhub.InputType], None]) -> None:
    numbers = ("float32", "float64", "int32", "int64")
    register(
        tlhub.InputType(
            name="timeseries",
            description="numeric sequences: a datasets List of numbers (one channel) or of per-step lists (several)",
            features=tuple(f"List(Value({n}))" for n in numbers) + tuple(f"List(List(Value({n})))" for n in numbers),
            main_inputs=("past_values",),
            plural="time series",
        )
    )


@tlhub.hookimpl
def register_modalities(register: Callable[[tlhub.Modality], None]) -> None:
    register(
        tlhub.Modality(
            name="patchtst",
            input_type="timeseries",
            model_types=("patchtst",),
            auto_model="PatchTSTForClassification",  # no auto class covers time-series classification
            pipeline_task="",  # transformers has no pipeline for it
            head_modules=("head",),
            lora_targets=("q_proj", "k_proj", "v_proj", "out_proj"),
            load_processor=load_processor,
            new_processor=new_processor,
            check_plan=check_plan,
            check_data=check_data,
            make_encoder=make_encoder,
            adapt_config=adapt_config,
            logits_output="prediction_logits",
            layers=layers,
            baseline=baseline,
            options=Options,
            description="PatchTST time-series classifiers (transformers PatchTSTForClassification)",
        )
    )


@tlhub.hookimpl
def register_metrics(register: Callable[[tlhub.Metric], None]) -> None:
    module = Path(__file__).with_name("balanced_accuracy.py")
    register(tlhub.Metric(name="balanced_accuracy", module=str(module), description="mean recall of the classes"))
