"""benchmarks/gpu_check.py --dry-run: both loops train a tiny ViT on the CPU and the report has their rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_dry_run_reports_tlhub_and_the_bare_loop(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--dry-run", "--output", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    rows = {row["path"]: row for row in report["rows"]}
    assert sorted(rows) == ["bare loop", "tlhub fit"], output[-3000:]
    for row in rows.values():
        assert "error" not in row, row
        assert row["samples_per_s"] > 0 and row["tflops"] > 0, row
        assert (row["steps"], row["warmup"], row["batch"], row["processes"]) == (10, 2, 8, 1), row
    assert report["flops"]["counted"] == report["flops"]["analytic"], report["flops"]
    markdown = (tmp_path / "report.md").read_text()
    assert "| path | round | processes | steps timed (+warm-up) | batch | samples/s | TFLOP/s |" in markdown
    assert "| tlhub fit | 1 | 1 | 10 (+2) | 8 |" in markdown and "n/a on CPU" in markdown, markdown
    assert "DDP on 2 GPUs: skipped (a dry run" in markdown, markdown
    assert markdown.strip() in output, output[-3000:]  # the same report on stdout
