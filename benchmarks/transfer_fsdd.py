"""Does the espeak-ng word pretraining pay off on real spoken digits, on the full split and with 5 per digit?

Runs recipes/spoken_digits_wav2vec2.yaml in several variants with tlhub's Python API and writes the
figures to docs/benchmarks.md. About 30 minutes on a 2-core CPU.

    .venv/bin/python benchmarks/transfer_fsdd.py            # all variants
    .venv/bin/python benchmarks/transfer_fsdd.py --reuse    # keep finished runs in runs/benchmarks
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
RECIPE = REPO / "recipes" / "spoken_digits_wav2vec2.yaml"
PRETRAINED = REPO / "recipes" / "checkpoints" / "wav2vec2-words"


def scratch() -> dict[str, Any]:
    """Same architecture as the pretrained checkpoint, random initial values."""
    config = yaml.safe_load((REPO / "recipes" / "pretrain_wav2vec2_words.yaml").read_text())["model"]["config"]
    return {"model.checkpoint": None, "model.config": config}


FEW_SHOT = {"data.train_samples_per_class": 5, "train.epochs": 40, "train.batch_size": 10}
SEEDS = (0, 1, 2)  # 50 training recordings: the seed (head initialisation, data order) moves results by points

VARIANTS: list[tuple[str, dict[str, Any], tuple[int, ...]]] = [
    ("fsdd full split, full, pretrained", {}, (0,)),
    ("fsdd full split, full, from scratch", scratch(), (0,)),
    ("fsdd 5 per digit, full, pretrained", FEW_SHOT, SEEDS),
    ("fsdd 5 per digit, full, from scratch", {**FEW_SHOT, **scratch()}, SEEDS),
]
# Not measured on FSDD yet (head and lora are tested on tiny models in tests/test_audio.py):
#   ("fsdd full split, head, pretrained", {"tuning.strategy": "head"}, (0,)),
#   ("fsdd full split, lora, pretrained", {"tuning.strategy": "lora"}, (0,)),


def write_report(rows: list[dict[str, Any]]) -> None:
    base = json.loads((PRETRAINED / "run.json").read_text())
    lines = [
        "## Pretrained start vs from scratch: spoken digits (FSDD)",
        "",
        f"Measured {machine()} by `benchmarks/transfer_fsdd.py`, bf16 autocast. `recipes/spoken_digits_wav2vec2.yaml`: "
        "the same 2M-parameter wav2vec2 (hidden 192, 4 layers, narrow 7-layer convolutional feature encoder), "
        "either from `recipes/checkpoints/wav2vec2-words` (supervised pretraining on 300 espeak-ng words, "
        f"held-out test accuracy {base['metrics']['test']['accuracy']:.4f}) or from random values, on the Free "
        "Spoken Digit Dataset's official split (takes 5-49: 2,430 train + 270 validation; takes 0-4: 300 test). "
        "Rows with 5 recordings per digit are the mean over train seeds 0, 1, 2 (which 50 recordings, head "
        "initialisation, data order), range in brackets.",
        "",
        *results_table(rows, "clips"),
    ]
    lines += [
        "",
        "`full` trains the convolutional feature encoder too (`tuning.full.freeze: []` in the recipe; keeping it "
        "frozen, the usual practice, measured 0.8667 test accuracy after 12 epochs from the same checkpoint).",
        "",
        "Overrides of each variant on top of `recipes/spoken_digits_wav2vec2.yaml` (`from scratch` also sets "
        "`model.config` to the pretraining recipe's architecture):",
        "",
        *[f"- {r['name']}: `{r['overrides']}`" for r in rows],
        "",
        "### The audio pretraining step",
        "",
        f"`{base['command']}`: {len(base['history'])} epochs, {base['wall_seconds'] / 60:.0f} minutes wall. "
        f"Held-out test clips ({base['metrics']['test']['examples']}): accuracy "
        f"{base['metrics']['test']['accuracy']:.4f}, macro F1 {base['metrics']['test']['f1']:.4f}. The source data "
        "is described in the checkpoint's model card (`recipes/checkpoints/wav2vec2-words/README.md`).",
    ]
    write_section("transfer_fsdd", lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="keep finished runs in runs/benchmarks; run the rest")
    args = parser.parse_args()
    write_report(run_all(RECIPE, VARIANTS, args.reuse))
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
