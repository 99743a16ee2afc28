"""Does the CIFAR-10 pretraining pay off on digits? And what do head / full / lora cost and give?

Runs recipes/digits_vit.yaml in several variants with tlhub's Python API and writes the measured
figures to docs/benchmarks.md. About 30 minutes on a 2-core CPU.

    .venv/bin/python benchmarks/transfer_digits.py            # all variants
    .venv/bin/python benchmarks/transfer_digits.py --quick    # two variants, to try the script
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml
from report import REPORT, machine, results_table, write_section
from runs import run_all

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "digits_vit.yaml"
FEW_SHOT = {"data.train_samples_per_class": 10, "train.epochs": 60}


def scratch() -> dict[str, Any]:
    """Same architecture as the pretrained checkpoint, random initial values."""
    config = yaml.safe_load((REPO / "recipes" / "pretrain_vit_cifar10.yaml").read_text())["model"]["config"]
    return {"model.checkpoint": None, "model.config": config}


HEAD = {"tuning.strategy": "head", "train.learning_rate": 3e-3}  # only a linear layer trains: a higher LR
LORA = {"tuning.strategy": "lora", "train.learning_rate": 2e-3}
FEW_SHOT_SEEDS = (0, 1, 2)  # 100 training images: the seed (head init, data order) moves results by points

VARIANTS: list[tuple[str, dict[str, Any], tuple[int, ...]]] = [
    # (name, overrides, train seeds)
    ("full split, full, pretrained", {}, (0,)),
    ("full split, full, from scratch", scratch(), (0,)),
    ("full split, head, pretrained", HEAD, (0,)),
    ("full split, lora, pretrained", LORA, (0,)),
    ("10 per class, full, pretrained", FEW_SHOT, FEW_SHOT_SEEDS),
    ("10 per class, full, from scratch", {**FEW_SHOT, **scratch()}, FEW_SHOT_SEEDS),
    ("10 per class, head, pretrained", {**FEW_SHOT, **HEAD}, FEW_SHOT_SEEDS),
]


def write_report(rows: list[dict[str, Any]]) -> None:
    base = json.loads((REPO / "recipes" / "checkpoints" / "vit-cifar10" / "run.json").read_text())
    lines = [
        f"Measured {machine()} by `benchmarks/transfer_digits.py`, bf16 autocast. "
        "Rows with 10 images per class are the mean over train seeds 0, 1, 2 (head initialisation and data "
        "order; the same 100 images), with the range in brackets; the other rows are one run (seed 0).",
        "",
        "## Pretrained start vs from scratch: scikit-learn digits",
        "",
        "`recipes/digits_vit.yaml`: the same ViT architecture (2.7M parameters, hidden 192, 6 layers, patch 4, "
        "32x32 input), either from `recipes/checkpoints/vit-cifar10` (supervised pretraining on CIFAR-10, "
        f"test accuracy {base['metrics']['test']['accuracy']:.4f}) or from random values. Same stratified split "
        "(1,293 train / 144 validation / 360 test), best epoch picked on validation, test reported.",
        "",
        *results_table(rows, "images"),
    ]
    lines += [
        "",
        "Wall time is the whole `tlhub.run` call (data, model, training, evaluation, saving), without Python start-up.",
        "The from-scratch rows build the model from the pretraining recipe's config, which asks for eager attention;",
        "the checkpoint loads with transformers' default (SDPA), slower at this size on this CPU: that, not the",
        "weights, is the difference in their wall times.",
        "",
        "Overrides of each variant on top of `recipes/digits_vit.yaml` (`from scratch` also sets `model.config` to the",
        "pretraining recipe's architecture and `model.checkpoint` to null):",
        "",
    ]
    lines += [f"- {r['name']}: `{r['overrides']}`" for r in rows]
    lines += [
        "",
        "## The pretraining step",
        "",
        f"`{base['command']}`: {len(base['history'])} epochs on 48,000 CIFAR-10 training photos (2,000 held out "
        f"for validation), {base['wall_seconds'] / 60:.0f} minutes wall (from its run.json; it shared the CPU with "
        f"other work while it ran). CIFAR-10 test split (10,000 photos): accuracy "
        f"{base['metrics']['test']['accuracy']:.4f}, macro F1 {base['metrics']['test']['f1']:.4f}.",
        "",
        "| epoch | train loss | validation accuracy |",
        "|---|---|---|",
    ]
    lines += [f"| {h['epoch']} | {h['train_loss']:.4f} | {h['validation_accuracy']:.4f} |" for h in base["history"]]
    write_section("transfer_digits", lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="run only the first two variants")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs in runs/benchmarks; run the rest")
    args = parser.parse_args()
    variants = VARIANTS[:2] if args.quick else VARIANTS
    write_report(run_all(RECIPE, variants, args.reuse))
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
