"""Running one benchmark variant of a recipe, each in a fresh interpreter, and reading what it recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "runs" / "benchmarks"


def run_in_fresh_process(recipe: Path, overrides: dict[str, Any]) -> None:
    """One process per run: a fresh interpreter, as a user's run would be."""
    code = f"import json, sys, tlhub; tlhub.run({str(recipe)!r}, overrides=json.loads(sys.argv[1]), overwrite=True)"
    subprocess.run([sys.executable, "-c", code, json.dumps(overrides)], check=True, cwd=REPO)


def run_variant(recipe: Path, name: str, overrides: dict[str, Any], seed: int, reuse: bool) -> dict[str, Any]:
    """Run ``recipe`` with ``overrides`` (or reuse its finished run) and return the figures of its run.json."""
    out = OUT / f"{name.replace(', ', '_').replace(' ', '-')}_seed{seed}"
    overrides = {**overrides, "train.seed": seed, "output_dir": str(out)}
    done = out / "run.json"
    if not (reuse and done.is_file() and json.loads(done.read_text()).get("finished")):
        run_in_fresh_process(recipe, overrides)
    info = json.loads(done.read_text())
    return {
        "name": name,
        "test": info["metrics"]["test"],
        "trainable": info["trainable_parameters"],
        "total": info["total_parameters"],
        "epochs": len(info["history"]),
        "best_epoch": info["best_epoch"],
        "train_examples": info["data"]["sizes"]["train"],
        "wall": info["wall_seconds"],
        "overrides": {k: v for k, v in overrides.items() if k not in ("output_dir", "model.config", "train.seed")},
    }


def summarise(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One table row from one or more seeds: mean, and the range when there are several."""

    def stat(values: list[float]) -> str:
        mean = sum(values) / len(values)
        return f"{mean:.4f}" if len(values) == 1 else f"{mean:.4f} ({min(values):.4f}-{max(values):.4f})"

    first = runs[0]
    return {
        **first,
        "name": name,
        "seeds": len(runs),
        "accuracy": stat([r["test"]["accuracy"] for r in runs]),
        "f1": stat([r["test"]["f1"] for r in runs]),
        "wall": sum(r["wall"] for r in runs) / len(runs),
        "epochs": "/".join(str(r["best_epoch"]) for r in runs) + f" of {first['epochs']}",  # best of all
    }


def run_all(
    recipe: Path, variants: list[tuple[str, dict[str, Any], tuple[int, ...]]], reuse: bool
) -> list[dict[str, Any]]:
    """One summarised row per ``(name, overrides, seeds)`` variant."""
    return [
        summarise(name, [run_variant(recipe, name, overrides, seed, reuse) for seed in seeds])
        for name, overrides, seeds in variants
    ]
