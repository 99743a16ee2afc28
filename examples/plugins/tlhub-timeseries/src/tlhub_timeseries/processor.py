"""The preprocessing of a PatchTST classifier: series of any length to the model's fixed window.

A transformers feature extractor (``FeatureExtractionMixin``), so it is saved beside the model as
``preprocessor_config.json`` and loads back with ``SeriesProcessor.from_pretrained(folder)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from transformers import BatchFeature, FeatureExtractionMixin

FITS = ("crop", "resample")


class SeriesProcessor(FeatureExtractionMixin):
    """Series (lists of numbers, or of per-step channel lists) to ``past_values`` (batch, window, channels) and
    ``past_observed_mask``.

    ``fit="crop"`` keeps the last ``context_length`` steps of a longer series and pads a shorter one at the start
    with steps marked unobserved (the model's scaler and attention ignore them), so the time scale is kept;
    ``fit="resample"`` stretches or squeezes every series to the window by linear interpolation (shapes of
    different durations compared as one). Missing values (``null`` or NaN) are marked unobserved too.
    """

    model_input_names: ClassVar[list[str]] = ["past_values", "past_observed_mask"]

    def __init__(self, context_length: int = 512, num_channels: int = 1, fit: str = "crop", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, not {fit!r}")
        self.context_length = context_length
        self.num_channels = num_channels
        self.fit = fit

    def array(self, series: Any) -> np.ndarray:
        """One series as a float array of shape (steps, channels), missing values as NaN."""
        values = np.asarray(series, dtype=np.float64)  # None -> nan
        return values[:, None] if values.ndim == 1 else values

    def window(self, values: np.ndarray) -> np.ndarray:
        """``values`` (steps, channels) fitted to (context_length, channels), unobserved steps as NaN."""
        steps, length = len(values), self.context_length
        if self.fit == "resample" and steps > 1:
            where = np.linspace(0, steps - 1, length)
            return np.stack([np.interp(where, np.arange(steps), channel) for channel in values.T], axis=1)
        if steps >= length:
            return values[steps - length :]
        padding = np.full((length - steps, values.shape[1]), np.nan)
        return np.concatenate([padding, values])

    def __call__(self, series: list[Any], return_tensors: str | None = "pt") -> BatchFeature:
        windows = np.stack([self.window(self.array(s)) for s in series]).astype(np.float32)
        observed = ~np.isnan(windows)
        data = {"past_values": np.nan_to_num(windows, nan=0.0), "past_observed_mask": observed}
        return BatchFeature(data, tensor_type=return_tensors)
