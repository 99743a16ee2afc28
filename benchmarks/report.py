"""docs/benchmarks.md is assembled from sections, each written by one benchmark script."""

from __future__ import annotations

import os
import platform
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
REPORT = REPO / "docs" / "benchmarks.md"


def machine() -> str:
    """Where the figures were measured, for a section's first line."""
    threads = os.environ.get("OMP_NUM_THREADS")
    limited = f", OMP_NUM_THREADS={threads} per run" if threads else ""
    return (
        f"{date.today().isoformat()} on this project's CI machine ({os.cpu_count()} CPU cores, no GPU, "
        f"Python {platform.python_version()}{limited})"
    )


def results_table(rows: list[dict[str, Any]], examples: str) -> list[str]:
    """The accuracy table of summarised rows (``runs.summarise``); ``examples`` names the training units."""
    lines = [
        f"| variant | train {examples} | test accuracy | test macro F1 | trainable / total params | best epoch "
        "| wall (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['name']} | {r['train_examples']} | {r['accuracy']} | {r['f1']} | "
        f"{r['trainable']:,} / {r['total']:,} | {r['epochs']} | {r['wall']:.0f} |"
        for r in rows
    ]
    return lines


def write_section(name: str, lines: list[str]) -> None:
    """Replace (or append) the section owned by benchmark ``name``, leaving the others as they are."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = "\n".join([begin, *lines, end])
    text = REPORT.read_text() if REPORT.is_file() else "# Benchmarks\n"
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    REPORT.write_text(text)
