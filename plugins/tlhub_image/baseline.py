"""The image plugin's classical baseline: logistic regression on the raw pixels of small thumbnails.

Why this one: it is the floor a fine-tuned ViT must clear to be worth its cost. On small, centred
images (scikit-learn's 8x8 digits, icons, stripes and colours) it is already strong; where it fails
(natural photos), the gap is what transfer learning bought. It fits in seconds on the CPU.

Each image is decoded as the encoder decodes it (PIL), converted to the mode the model reads (RGB for
three channels, L for one), resized to a fixed thumbnail, flattened and scaled to [0, 1]; then each
pixel is standardised and a multinomial logistic regression reads them.

scikit-learn, numpy and PIL load inside the functions: ``tlhub plugins`` imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import PIL.Image
    from sklearn.pipeline import Pipeline
    from transformers import PretrainedConfig

# The thumbnail's side. The model's own image size when it is this small (the digits recipe's 16x16
# ViT sees the same pixels the baseline does), else this: 32x32x3 = 3,072 features keep the
# regression fast and its weights few, at the price of fine detail a large ViT may read.
LARGEST_SIDE = 32


def thumbnail_side(config: PretrainedConfig) -> int:
    """The side of the square thumbnail the baseline reads: ``config.image_size`` up to ``LARGEST_SIDE``."""
    size = config.image_size
    side = size if isinstance(size, int) else max(size)  # a (height, width) pair in some configs
    return side if side <= LARGEST_SIDE else LARGEST_SIDE


def pixels(images: Sequence[Any], mode: str, side: int) -> np.ndarray:
    """``(images, side * side * channels)`` float32 pixels in [0, 1], from PIL images or undecoded
    ``{"bytes", "path"}`` values of a ``datasets.Image(decode=False)`` column."""
    import numpy as np
    import PIL.Image

    def thumbnail(image: PIL.Image.Image) -> np.ndarray:
        # Bilinear, as the ViT processor resizes; PIL widens the filter when shrinking, so it also averages.
        small = image.convert(mode).resize((side, side), PIL.Image.Resampling.BILINEAR)
        return np.asarray(small, dtype=np.float32).reshape(-1) / 255.0

    rows = []
    for image in images:
        if isinstance(image, dict):  # undecoded: embedded bytes, else the file
            with PIL.Image.open(BytesIO(image["bytes"]) if image.get("bytes") else image["path"]) as opened:
                rows.append(thumbnail(opened))
        else:
            rows.append(thumbnail(image))
    return np.stack(rows)


def pixel_baseline(config: PretrainedConfig, seed: int) -> Pipeline:
    """Raw thumbnail pixels -> standardised -> logistic regression (``Modality.baseline``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    mode = "RGB" if config.num_channels == 3 else "L"  # what make_encoder converts to
    return Pipeline(
        [
            (
                "pixels",
                FunctionTransformer(pixels, validate=False, kw_args={"mode": mode, "side": thumbnail_side(config)}),
            ),
            ("scale", StandardScaler()),
            ("classify", LogisticRegression(max_iter=1000, random_state=seed)),
        ]
    )
