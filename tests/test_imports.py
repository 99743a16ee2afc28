"""Light at the door: `import tlhub`, `tlhub --help` and `tlhub plugins` import no torch, transformers,
datasets, peft, accelerate or matplotlib; and a normal run prints tlhub's own account, not transformers' load report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import digits_recipe, write_recipe

HEAVY = ("torch", "transformers", "datasets", "peft", "accelerate", "matplotlib")


def imported_modules(*args: str) -> set[str]:
    """Top-level packages a Python command imports, from ``-X importtime``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    return {row.split(".")[0] for row in rows}


@pytest.mark.parametrize(
    "command",
    [
        ["-c", "import tlhub"],
        ["-m", "tlhub", "--help"],
        ["-m", "tlhub", "plugins"],
        ["-c", "import tlhub.errors, tlhub.recipe, tlhub.plan, tlhub.rundir, tlhub.reference, tlhub.plots"],
    ],
    ids=["import", "help", "plugins", "core-modules"],
)
def test_the_door_imports_nothing_heavy(command: list[str]) -> None:
    heavy = sorted(imported_modules(*command) & set(HEAVY))
    assert heavy == [], f"{' '.join(command)} imports {heavy}"


def test_a_run_prints_no_load_report_or_torchvision_warning(tmp_path: Path, tiny_vit: Path) -> None:
    # The tiny ViT has 5 classes and the digits 10: transformers would report the resized head.
    recipe = write_recipe(tmp_path / "r.yaml", digits_recipe(tiny_vit, tmp_path / "out"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("TRANSFORMERS_VERBOSITY", None)  # the test session sets it; a user's shell does not
    done = subprocess.run(
        [sys.executable, "-m", "tlhub", "run", str(recipe)], env=env, capture_output=True, text=True, timeout=300
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "classifier.weight: pretrained 5x32 dropped, new 10x32" in output
    for noise in ("LOAD REPORT", "torchvision", "Warning", "warn("):
        assert noise not in output, output
