"""How long the door takes: `tlhub --help`, `tlhub plugins` and `import tlhub`, whole processes.

    .venv/bin/python benchmarks/startup.py [--runs 5]

Each command runs once to warm the file cache, then ``--runs`` times; the section reports the median and
the range of wall seconds, and how many modules each imports (none of torch, transformers, datasets,
peft, accelerate: tests/test_imports.py checks that). Time it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from report import machine, write_section

TLHUB = str(Path(sys.executable).with_name("tlhub"))
COMMANDS = {
    "tlhub --help": [TLHUB, "--help"],
    "tlhub plugins": [TLHUB, "plugins"],
    'python -c "import tlhub"': [sys.executable, "-c", "import tlhub"],
}


def wall_seconds(command: list[str], runs: int) -> list[float]:
    subprocess.run(command, check=True, capture_output=True)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def modules(command: list[str]) -> int:
    python = [
        sys.executable,
        "-X",
        "importtime",
        *(command[1:] if command[0] == sys.executable else ["-m", "tlhub", *command[1:]]),
    ]
    done = subprocess.run(python, check=True, capture_output=True, text=True)
    return sum(line.startswith("import time:") for line in done.stderr.splitlines()) - 1  # minus the header


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    lines = [
        f"Measured {machine()} by `benchmarks/startup.py`: whole processes, {args.runs} runs after a warm-up.",
        "",
        "## Start-up",
        "",
        "| command | median wall (s) | range (s) | modules imported |",
        "|---|---|---|---|",
    ]
    for name, command in COMMANDS.items():
        times = wall_seconds(command, args.runs)
        lines.append(
            f"| `{name}` | {statistics.median(times):.2f} | {min(times):.2f}-{max(times):.2f} | {modules(command)} |"
        )
    write_section("startup", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
