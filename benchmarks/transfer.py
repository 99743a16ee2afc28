"""Which strategy at which training-set size, on all three modalities: `tlhub compare` on each shipped recipe.

Runs `tlhub compare` (the recipe's own `compare:` grid) for digits (ViT), spoken digits (wav2vec2) and SMS
spam (BERT), each in a fresh process, then writes each grid's table, verdict and plot into docs/transfer.md
(between its markers) and docs/transfer/. The readings in docs/transfer.md are written by hand, from
these figures. A grid interrupted is resumed by running the script again. Digits about 40 minutes on a
2-core CPU, spoken digits and SMS about an hour each.

    .venv/bin/python benchmarks/transfer.py                 # all three
    .venv/bin/python benchmarks/transfer.py digits sms      # some
    .venv/bin/python benchmarks/transfer.py --no-run        # only rewrite the docs from finished grids
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from report import machine

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "transfer.md"
FIGURES = REPO / "docs" / "transfer"
GRIDS = {
    "digits": ("recipes/digits_vit.yaml", "Handwritten digits, ViT pretrained on CIFAR-10"),
    "fsdd": ("recipes/spoken_digits_wav2vec2.yaml", "Spoken digits (FSDD), wav2vec2 pretrained on synthetic words"),
    "sms": ("recipes/sms_spam_bert.yaml", "SMS spam, all-MiniLM-L6-v2 (a real pretrained sentence encoder)"),
}


def folder(recipe: str) -> Path:
    """Where `tlhub compare` puts the recipe's grid by default: its output_dir + '-compare'."""
    from tlhub.recipe import load_recipe

    return REPO / f"{load_recipe(REPO / recipe).output_dir.rstrip('/')}-compare"


def run(recipe: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tlhub", "compare", recipe], check=True, cwd=REPO)
    return time.perf_counter() - started


def section(name: str, recipe: str, title: str, wall: float | None) -> list[str]:
    found = folder(recipe)
    FIGURES.mkdir(exist_ok=True)
    shutil.copyfile(found / "compare.png", FIGURES / f"{name}.png")
    shutil.copyfile(found / "compare.csv", FIGURES / f"{name}.csv")
    cells = json.loads((found / "cells.json").read_text())
    total = sum(c["result"]["wall_seconds"] for c in cells.values())
    summary = (found / "compare.md").read_text().split("\n", 2)[2].strip()  # without its title line
    timing = f"{wall / 60:.1f} minutes wall for the whole grid" if wall else "wall time: see below"
    return [
        f"### {title}",
        "",
        f"`tlhub compare {recipe}`: {len(cells)} cells, {total / 60:.1f} minutes in the cells ({timing}), "
        f"measured {machine()}.",
        "",
        f"![{name}](transfer/{name}.png)",
        "",
        summary,
        "",
        f"Every cell's figures: [transfer/{name}.csv](transfer/{name}.csv).",
    ]


def write(name: str, lines: list[str]) -> None:
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    text = DOC.read_text()
    before, rest = text.split(begin, 1)
    DOC.write_text(before + "\n".join([begin, *lines, end]) + rest.split(end, 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grids", nargs="*", choices=[*GRIDS, []], default=list(GRIDS))
    parser.add_argument("--no-run", action="store_true", help="only rewrite the docs from finished grids")
    args = parser.parse_args()
    for name in args.grids or list(GRIDS):
        recipe, title = GRIDS[name]
        wall = None if args.no_run else run(recipe)
        write(name, section(name, recipe, title, wall))


if __name__ == "__main__":
    main()
