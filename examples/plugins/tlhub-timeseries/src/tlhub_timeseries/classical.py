"""The plugin's classical baseline: logistic regression on each series' statistics and spectrum.

Per channel: the mean, standard deviation, minimum and maximum of the observed values, and the energy of the
spectrum in 16 bands (the magnitudes of the Fourier transform of the model's window, mean-centred, missing steps
as the mean), each band's share of the whole. Then every number is standardised and a multinomial logistic
regression reads them: what tells series apart by level, spread and rhythm, without learning their shapes.
numpy and scikit-learn load inside the functions: ``tlhub plugins`` imports this package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

BANDS = 16


def describe(series: Sequence[Any], processor: Any) -> Any:
    """``(series, channels * (4 + BANDS))``: the numbers the baseline reads for each series."""
    import numpy as np

    rows = []
    for values in series:
        steps = processor.array(values)  # (steps, channels), missing as NaN
        window = processor.window(steps)  # (context_length, channels), unobserved as NaN
        mean = np.nanmean(steps, axis=0)
        stats = [mean, np.nanstd(steps, axis=0), np.nanmin(steps, axis=0), np.nanmax(steps, axis=0)]
        centred = np.where(np.isnan(window), 0.0, window - mean)
        spectrum = np.abs(np.fft.rfft(centred, axis=0)) ** 2  # (frequencies, channels)
        bands = np.stack([band.sum(axis=0) for band in np.array_split(spectrum, BANDS)])
        shares = bands / np.maximum(bands.sum(axis=0), 1e-12)
        rows.append(np.concatenate([*stats, shares.ravel()]))
    return np.stack(rows)


def baseline(processor: Any, seed: int) -> Any:
    """The estimator ``tlhub compare`` fits beside the deep runs on the raw column values."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    return make_pipeline(
        FunctionTransformer(describe, kw_args={"processor": processor}),
        StandardScaler(),
        LogisticRegression(max_iter=2000, random_state=seed),
    )
