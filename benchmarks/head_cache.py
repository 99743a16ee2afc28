"""Head-only on cached features vs through the frozen layers: time per epoch and accuracy, digits recipe.

Runs `recipes/digits_vit.yaml` with `tuning.strategy=head` three times, each in a fresh interpreter:
through the whole model every step (`tuning.head.cache_features=false`), on cached features with an
empty cache (it computes them), and again (it reads them). Per-epoch training time is each run's
`run.json` history (`train_seconds`); the section goes to docs/benchmarks.md. About 2 minutes.

    .venv/bin/python benchmarks/head_cache.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from report import machine, write_section

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "digits_vit.yaml"
OUT = REPO / "runs" / "benchmarks" / "head_cache"


def run(name: str, folder: str, cache: bool, hf_home: str) -> dict[str, Any]:
    """One run in a fresh interpreter; its run.json figures and the wall time of the whole process."""
    out = OUT / folder
    overrides = [
        "tuning.strategy=head",
        f"tuning.head.cache_features={str(cache).lower()}",
        f"output_dir={out}",
    ]
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tlhub", "run", str(RECIPE), *overrides, "--overwrite"],
        check=True,
        cwd=REPO,
        env={**os.environ, "HF_HOME": hf_home, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    info = json.loads((out / "run.json").read_text())
    epochs = [h["train_seconds"] for h in info["history"]]
    return {
        "name": name,
        "wall": wall,
        "epoch": statistics.median(epochs),
        "epochs": len(epochs),
        "accuracy": info["metrics"]["test"]["accuracy"],
        "f1": info["metrics"]["test"]["f1"],
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as hf_home:  # an empty cache: the first cached run computes it
        plain = run("through the frozen layers (cache_features: false)", "plain", False, hf_home)
        cold = run("cached features, cache empty (computed first)", "cold", True, hf_home)
        warm = run("cached features, cache built", "warm", True, hf_home)
    rows = [plain, cold, warm]
    lines = [
        f"Measured {machine()} by `benchmarks/head_cache.py`: `recipes/digits_vit.yaml` with "
        f"`tuning.strategy=head` ({plain['epochs']} epochs, 1,293 training images, bf16), each run a fresh process.",
        "",
        "| variant | median training time per epoch (s) | speed-up per epoch | process wall (s) | test accuracy "
        "| test macro F1 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['name']} | {r['epoch']:.3f} | {plain['epoch'] / r['epoch']:.0f}x | {r['wall']:.1f} | "
        f"{r['accuracy']:.4f} | {r['f1']:.4f} |"
        for r in rows
    ]
    lines += [
        "",
        f"Per epoch the head on cached features trains {plain['epoch'] / warm['epoch']:.0f}x faster than the same "
        f"head trained through the frozen layers; the test accuracy differs by "
        f"{abs(warm['accuracy'] - plain['accuracy']) * 100:.2f} points. The frozen layers run in eval mode on both "
        "paths, so they compute the same vectors; what differs is the order of float additions (bf16 autocast).",
    ]
    write_section("head_cache", ["## Head-only on cached features", "", *lines])
    print("\n".join(lines))


if __name__ == "__main__":
    main()
