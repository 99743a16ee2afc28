"""Does training-time augmentation help? Digits (full split and 10 per class) and spoken digits (FSDD).

Each variant runs a shipped recipe from its own checkpoint with the same train seed, with and without
``model.options.augment``, and writes the test figures to docs/benchmarks.md. About 45 minutes on a
2-core CPU (FSDD takes most of it).

    .venv/bin/python benchmarks/augmentation.py            # all variants
    .venv/bin/python benchmarks/augmentation.py --quick    # the few-shot digits variants only
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from report import machine, results_table, write_section

from runs import run_all

REPO = Path(__file__).resolve().parent.parent
DIGITS = REPO / "recipes" / "digits_vit.yaml"
FSDD = REPO / "recipes" / "spoken_digits_wav2vec2.yaml"

# Digits are not mirror-symmetric: no flips. Small crops and rotations keep a digit a digit.
GEOMETRIC = {"crop_scale": [0.8, 1.0], "rotation_degrees": 10.0}
MIXUP = {**GEOMETRIC, "mixup_alpha": 0.2}
# Speed, shift and background noise as the speech literature uses them. SpecAugment is wav2vec2's own
# masking: the checkpoint's config already masks time (mask_time_prob 0.05, 4 frames) in every row; the
# last row masks twice as much time and adds channel masks.
WAVEFORM = {"speed_factors": [0.9, 1.0, 1.1], "shift_seconds": 0.1, "noise_snr_db": [20.0, 40.0]}
SPECAUGMENT = {**WAVEFORM, "mask_time_prob": 0.1, "mask_feature_prob": 0.05, "mask_feature_length": 16}

NONE: dict[str, Any] = {}  # every kind off, whatever the recipe sets
FEW_SHOT = {"data.train_samples_per_class": 10, "train.epochs": 60}
FEW_SHOT_SEEDS = (0, 1, 2)  # 100 training images: the seed moves results by points

DIGIT_VARIANTS: list[tuple[str, dict[str, Any], tuple[int, ...]]] = [
    ("full split, no augmentation", {"model.options.augment": NONE}, (0,)),
    ("full split, crop + rotation", {"model.options.augment": GEOMETRIC}, (0,)),
    ("full split, crop + rotation + mixup", {"model.options.augment": MIXUP}, (0,)),
    ("10 per class, no augmentation", {**FEW_SHOT, "model.options.augment": NONE}, FEW_SHOT_SEEDS),
    ("10 per class, crop + rotation", {**FEW_SHOT, "model.options.augment": GEOMETRIC}, FEW_SHOT_SEEDS),
    ("10 per class, crop + rotation + mixup", {**FEW_SHOT, "model.options.augment": MIXUP}, FEW_SHOT_SEEDS),
]
FSDD_SEEDS = (0, 1)
FSDD_VARIANTS: list[tuple[str, dict[str, Any], tuple[int, ...]]] = [
    ("FSDD, no augmentation", {"model.options.augment": NONE}, FSDD_SEEDS),
    ("FSDD, speed + shift + noise", {"model.options.augment": WAVEFORM}, FSDD_SEEDS),
    ("FSDD, speed + shift + noise + stronger SpecAugment", {"model.options.augment": SPECAUGMENT}, FSDD_SEEDS),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the few-shot digits variants")
    parser.add_argument("--reuse", action="store_true", help="reuse finished runs under runs/benchmarks")
    args = parser.parse_args()
    digit_variants = DIGIT_VARIANTS[3:] if args.quick else DIGIT_VARIANTS
    digits = run_all(DIGITS, digit_variants, args.reuse)
    spoken = [] if args.quick else run_all(FSDD, FSDD_VARIANTS, args.reuse)
    lines = [
        "## Training-time augmentation",
        "",
        f"Measured {machine()} by `benchmarks/augmentation.py`, bf16 autocast. Each row runs the shipped recipe "
        "from its own checkpoint with the same train seed; only `model.options.augment` differs (evaluation "
        "never augments). Rows with 10 images per class are the mean over train seeds 0, 1, 2, FSDD rows over "
        "seeds 0 and 1, with the range in brackets; the other rows are one run (seed 0).",
        "",
        "`recipes/digits_vit.yaml` (CIFAR-10-pretrained ViT on scikit-learn's digits, 360 test images):",
        "",
        *results_table(digits, "images"),
    ]
    if spoken:
        lines += [
            "",
            "`recipes/spoken_digits_wav2vec2.yaml` (word-pretrained wav2vec2 on FSDD; test: FSDD's official split, "
            "takes 0-4 of every speaker and digit, 300 recordings):",
            "",
            *results_table(spoken, "recordings"),
        ]
    lines += ["", "Augmentation of each variant (`model.options.augment`):", ""]
    lines += [f"- {r['name']}: `{r['overrides']['model.options.augment'] or 'none'}`" for r in digits + spoken]
    write_section("augmentation", lines)


if __name__ == "__main__":
    main()
