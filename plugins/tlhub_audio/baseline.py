"""The audio plugin's classical baseline: logistic regression on clip-level MFCC statistics.

Why this one: MFCCs summarised over time (their mean and spread, and those of their frame-to-frame
deltas) are the classic bag-of-frames description of a clip's timbre and pitch range. A linear model
on them separates tones, instruments, speakers and a few isolated words, fits in seconds on the CPU,
and shows how much a fine-tuned wav2vec2-family model adds beyond the spectrum's overall shape.

The clips arrive as ``check_data`` left them: mono float arrays at the feature extractor's rate.
Per clip: 20 MFCCs (40 mel bands, 25 ms windows every 10 ms), their deltas, and the mean and
standard deviation of each over the frames: 80 numbers. Then each is standardised and a
multinomial logistic regression reads them.

torch, torchaudio, numpy and scikit-learn load inside the functions: ``tlhub plugins`` imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from sklearn.pipeline import Pipeline

N_MFCC = 20
N_MELS = 40
WINDOW_SECONDS = 0.025
HOP_SECONDS = 0.010


def mfcc_statistics(clips: Sequence[Any], rate: int = 16_000) -> np.ndarray:
    """``(clips, 4 * N_MFCC)``: mean and standard deviation over time of each MFCC and of its delta, for
    clips at ``rate`` (the feature extractor's, which ``check_data`` resampled them to)."""
    import numpy as np
    import torch
    import torchaudio.functional
    import torchaudio.transforms

    window, hop = round(WINDOW_SECONDS * rate), round(HOP_SECONDS * rate)
    mfcc = torchaudio.transforms.MFCC(
        sample_rate=rate,
        n_mfcc=N_MFCC,
        melkwargs={"n_fft": window, "win_length": window, "hop_length": hop, "n_mels": N_MELS},
    )
    rows = []
    with torch.no_grad():
        for clip in clips:
            waveform = torch.as_tensor(np.asarray(clip, dtype=np.float32))
            # The STFT reflects half a window at each end: a clip shorter than a window is zero-padded to one.
            waveform = torch.nn.functional.pad(waveform, (0, max(0, window - waveform.numel())))
            coefficients = mfcc(waveform)  # (N_MFCC, frames)
            deltas = torchaudio.functional.compute_deltas(coefficients)
            rows.append(
                torch.cat(
                    [
                        coefficients.mean(1),
                        coefficients.std(1, correction=0),
                        deltas.mean(1),
                        deltas.std(1, correction=0),
                    ]
                )
            )
    return torch.stack(rows).numpy().astype(np.float64)


def mfcc_baseline(processor: Any, seed: int) -> Pipeline:
    """MFCC statistics -> standardised -> logistic regression (``Modality.baseline``), at the feature
    extractor's sampling rate."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    return Pipeline(
        [
            (
                "mfcc",
                FunctionTransformer(mfcc_statistics, validate=False, kw_args={"rate": int(processor.sampling_rate)}),
            ),
            ("scale", StandardScaler()),
            ("classify", LogisticRegression(max_iter=1000, random_state=seed)),
        ]
    )
