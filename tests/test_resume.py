"""Kill a run at any moment, resume it, and get the uninterrupted run's result, exactly.

For fp32 (``mixed_precision: no``) and bf16 with random augmentation: one uninterrupted reference run of a tiny
recipe, then trials in which a ``tlhub run`` process is SIGKILLed at a chosen moment (while training, validating,
saving a checkpoint, or saving the final model) and resumed with ``--resume``, sometimes killed again, until it
finishes. Each finished folder must hold the reference's ``metrics.json``, ``run.json`` history, log and best epoch,
the same weights and the same files, every one of them in the manifest that ``--overwrite`` removes.

The process runs in slices of a millisecond and is looked at only while stopped (``TlhubProcess.run_until``), so
the moment a trial records is the moment the process died in, read from what it left on disk and in its log.
A kill before the first complete checkpoint leaves nothing to resume: ``--resume`` must say so, and the trial
starts again with ``--overwrite``.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from tests.conftest import TlhubProcess, digits_recipe, write_recipe

EPOCHS = 3
PER_CLASS = 17  # 170 training images: 11 batches of 16 per epoch, the last one short
BATCH = 16
EVERY = 4  # train.checkpoint_steps: mid-epoch checkpoints, one of them on an epoch's first batch
SAVES = EPOCHS + (EPOCHS * math.ceil(10 * PER_CLASS / BATCH)) // EVERY  # one per epoch, one every EVERY steps

PHASES = ("training", "validation", "checkpoint save", "final save")  # each must be hit
BEFORE_FIRST = "before the first checkpoint"
FINAL_FILES = ("config.json", "model.safetensors", "preprocessor_config.json", "metrics.json", "recipe.yaml")

# What each trial aims at, attempt after attempt; the last attempt of every trial runs to the end.
TRIALS = [
    ["checkpoint save"],
    ["training"],
    ["validation"],
    ["final save"],
    ["checkpoint save", "checkpoint save"],
    ["training", "validation"],
    ["validation", "final save"],
    ["early"],
    ["first save", "training"],
    ["final save", "final save"],
    ["training", "training"],
    ["run.json rewrite"],
    ["validation", "run.json rewrite"],
]


@dataclass
class Attempt:
    """One ``tlhub run`` process of a trial, and where its run directory stood when it started."""

    process: TlhubProcess
    out: Path
    started_ns: int
    first_save: int  # the number of the first checkpoint this process saves
    epochs_done: int  # epochs finished in the checkpoint it resumes from

    def touched(self, path: Path) -> bool:
        """Whether this process wrote ``path`` (or a file directly in it): a killed earlier one leaves files too."""
        try:
            entries = [path, *path.iterdir()] if path.is_dir() else [path]
            return max(p.stat().st_mtime_ns for p in entries) >= self.started_ns
        except FileNotFoundError:
            return False


@dataclass
class Trial:
    aims: list[str]
    phases: list[str] = field(default_factory=list)  # where each kill landed
    restarts: int = 0  # kills before the first checkpoint, started again with --overwrite
    problems: list[str] = field(default_factory=list)


def start(start_tlhub: Any, recipe: Path, out: Path, flags: list[str], log: Path) -> Attempt:
    checkpoints = out / "checkpoints"
    complete = [p for p in checkpoints.glob("checkpoint_*") if (p / "COMPLETE").exists()]
    latest = max(complete, key=lambda p: int(p.name.split("_")[1]), default=None)
    done = json.loads((latest / "train_state.json").read_text())["epoch"] if latest and "--resume" in flags else 0
    first = int(latest.name.split("_")[1]) + 1 if latest and "--resume" in flags else 1
    # The new process writes nothing for its first few hundred milliseconds, far more than the lag of the coarse
    # clock file times come from; everything an earlier (killed) process wrote is older than this.
    started = time.time_ns()
    process = start_tlhub("run", recipe, f"output_dir={out}", *flags, log=log)
    return Attempt(process, out, started, first, done)


def bars_done(err: str) -> set[int]:
    """Epochs whose training batches are all done (tqdm's bar reached 100%)."""
    return {int(e) for e in re.findall(rf"epoch (\d+)/{EPOCHS}: 100%", err)}


def epochs_reported(out: str) -> set[int]:
    """Epochs whose validation is done (their line is printed)."""
    return {int(e) for e in re.findall(rf"epoch (\d+)/{EPOCHS}  train loss", out)}


def status(out: Path) -> str | None:
    try:
        return json.loads((out / "run.json").read_text()).get("status")  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None  # not there, or caught in the middle of being rewritten


def phase_of(attempt: Attempt) -> str:
    """Where the stopped process stands, from what it has written."""
    out = attempt.out
    if status(out) == "finished":
        return "finished"  # dropping its checkpoints
    folders = list((out / "checkpoints").glob("checkpoint_*"))
    if not any((p / "COMPLETE").exists() for p in folders):
        return BEFORE_FIRST
    if any(not (p / "COMPLETE").exists() and attempt.touched(p) for p in folders):
        return "checkpoint save"
    if any(attempt.touched(out / name) for name in FINAL_FILES):
        return "final save"
    printed, err = attempt.process.out(), attempt.process.err()
    if "best epoch:" in printed:
        return "final evaluation"
    if bars_done(err) - epochs_reported(printed):
        return "validation"
    if not re.search(rf"epoch \d+/{EPOCHS}:", err):
        return "startup"
    return "training"


Stage = tuple[Callable[[], bool], float]  # a condition, and the seconds the process runs between looks


def aim(kind: str, attempt: Attempt, rng: random.Random) -> list[Stage]:
    """Conditions on the stopped process, met one after the other, the last at a moment of ``kind`` (picked at
    random within it); finer slices where the moment is short."""
    out, checkpoints, process = attempt.out, attempt.out / "checkpoints", attempt.process
    last_training_save = SAVES - 1  # after the last save only the final evaluation and save remain
    if kind == "training" and attempt.first_save > last_training_save:
        kind = "final save"
    if kind == "validation" and attempt.epochs_done >= EPOCHS:
        kind = "final save"
    finishing = (lambda: "best epoch:" in process.out(), 0.001)

    if kind in ("checkpoint save", "first save"):
        number = 1 if kind == "first save" else rng.randint(max(attempt.first_save, 2), SAVES)
        folder = checkpoints / f"checkpoint_{number}"
        return [(lambda: folder.is_dir() and not (folder / "COMPLETE").exists() and attempt.touched(folder), 0.001)]
    if kind == "training":
        marker = checkpoints / f"checkpoint_{rng.randint(attempt.first_save, last_training_save)}" / "COMPLETE"
        return [(_then_run(lambda: marker.exists(), rng.randint(1, 15)), 0.001)]
    if kind == "validation":
        epoch = rng.randint(attempt.epochs_done + 1, EPOCHS)
        return [(lambda: epoch in bars_done(process.err()) and epoch not in epochs_reported(process.out()), 0.001)]
    if kind == "final save":
        name = rng.choice(FINAL_FILES[:4])  # recipe.yaml comes a moment before run.json says finished
        return [finishing, (lambda: attempt.touched(out / name) and status(out) != "finished", 0.0)]
    if kind == "run.json rewrite":  # between the truncation of run.json and the write of its new text
        run_file = out / "run.json"
        return [finishing, (lambda: run_file.is_file() and status(out) is None, 0.0)]
    if kind == "early":
        return [(_then_run(lambda: "epoch 1/" in process.err(), rng.randint(0, 5)), 0.001)]
    raise ValueError(kind)


def _then_run(condition: Callable[[], bool], slices: int) -> Callable[[], bool]:
    """``condition``, then ``slices`` more slices of running."""
    left = [slices]

    def check() -> bool:
        if left[0] < slices or condition():
            left[0] -= 1
        return left[0] < 0

    return check


def run_trial(start_tlhub: Any, recipe: Path, out: Path, logs: Path, trial: Trial, rng: random.Random) -> bool:
    """Kill and resume as ``trial.aims`` says; whether the run finished (``trial.problems`` says why not)."""
    flags: list[str] = []
    for number in range(len(trial.aims) + 4):
        attempt = start(start_tlhub, recipe, out, flags, logs / f"attempt{number}")
        process = attempt.process
        kind = trial.aims[number] if number < len(trial.aims) else None
        stages = aim(kind, attempt, rng) if kind is not None else []
        if kind is None or not all(process.run_until(condition, quantum) for condition, quantum in stages):
            code = process.wait()
            if kind is not None:
                trial.phases.append("missed: it finished first")
            if code != 0:
                trial.problems.append(f"attempt {number} ({' '.join(flags)}): exit {code}: {process.err()[-1500:]}")
            return code == 0
        phase = phase_of(attempt)
        process.kill()
        trial.phases.append(phase)
        if phase == "finished":
            return True
        if phase == BEFORE_FIRST:
            check = start(start_tlhub, recipe, out, ["--resume"], logs / f"attempt{number}-check")
            code, err = check.process.wait(), check.process.err()
            errors = [line for line in err.splitlines() if line.startswith("error:")]
            if code != 2 or len(errors) != 1 or "stopped before its first checkpoint" not in errors[0]:
                trial.problems.append(f"--resume after a kill {BEFORE_FIRST}: exit {code}: {err[-1500:]}")
            trial.restarts += 1
            flags = ["--overwrite"]
        else:
            flags = ["--resume"]
    trial.problems.append("did not finish")
    return False


TIMES = ("train_seconds", "train_samples_per_second")


def compare(out: Path, reference: Path) -> list[str]:
    """How a resumed run's folder differs from the uninterrupted run's."""
    problems = []
    metrics, expected_metrics = (out / "metrics.json").read_text(), (reference / "metrics.json").read_text()
    if json.loads(metrics) != json.loads(expected_metrics):
        problems.append(f"metrics.json differs: {metrics} != {expected_metrics}")
    ran, expected = json.loads((out / "run.json").read_text()), json.loads((reference / "run.json").read_text())
    for record in (ran, expected):  # wall-clock times differ between any two runs
        record["history"] = [{k: v for k, v in h.items() if k not in TIMES} for h in record.get("history", [])]
    for key in ("history", "log", "best_epoch", "metrics", "status"):
        if ran.get(key) != expected.get(key):
            problems.append(f"run.json {key} differs: {ran.get(key)} != {expected.get(key)}")
    weights, expected_weights = (
        load_file(str(out / "model.safetensors")),
        load_file(str(reference / "model.safetensors")),
    )
    changed = [k for k in expected_weights if k not in weights or not weights[k].equal(expected_weights[k])]
    if changed:
        problems.append(f"weights differ: {changed[:3]}")
    names, expected_names = {p.name for p in out.iterdir()}, {p.name for p in reference.iterdir()}
    if names != expected_names:
        problems.append(
            f"files differ: extra {sorted(names - expected_names)}, missing {sorted(expected_names - names)}"
        )
    listed = set((out / ".tlhub-manifest").read_text().split())
    control = {n for n in names if n.startswith(".tlhub")}  # the manifest and the (unlocked) lock file
    if unlisted := sorted(names - listed - control):
        problems.append(f"written but not in the manifest (--overwrite would leave them): {unlisted}")
    return problems


# The bf16 trials also augment (random crops, rotations, mixup): each batch's draws must replay on resume.
AUGMENT = {"crop_scale": [0.7, 1.0], "rotation_degrees": 10.0, "mixup_alpha": 0.4}


@pytest.mark.parametrize(("precision", "augment"), [("no", None), ("bf16", AUGMENT)], ids=["fp32", "bf16-augmented"])
def test_a_killed_run_resumes_to_the_uninterrupted_result(
    start_tlhub: Any, tiny_vit: Path, tmp_path: Path, precision: str, augment: dict[str, Any] | None
) -> None:
    recipe = write_recipe(
        tmp_path / "recipe.yaml",
        digits_recipe(
            tiny_vit,
            tmp_path / "unused",
            model={"plugin": "image", "checkpoint": str(tiny_vit), "options": {"augment": augment} if augment else {}},
            data={"train_samples_per_class": PER_CLASS},
            train={
                "epochs": EPOCHS,
                "batch_size": BATCH,
                "eval_batch_size": 48,
                "learning_rate": 1e-2,
                "checkpoint_steps": EVERY,
                "mixed_precision": precision,
            },
        ),
    )
    reference = tmp_path / "reference"
    uninterrupted = start_tlhub("run", recipe, f"output_dir={reference}", log=tmp_path / "reference")
    assert uninterrupted.wait() == 0, uninterrupted.err()[-3000:]
    assert len(json.loads((reference / "run.json").read_text())["history"]) == EPOCHS

    rng = random.Random(f"resume-{precision}")
    trials = [Trial(aims) for aims in TRIALS]
    for number, trial in enumerate(trials):
        folder = tmp_path / f"trial{number}"
        folder.mkdir()
        if run_trial(start_tlhub, recipe, folder / "out", folder, trial, rng):
            trial.problems += compare(folder / "out", reference)

    table = "\n".join(
        f"  {t.aims} -> {t.phases} (restarts {t.restarts}){': ' + '; '.join(t.problems) if t.problems else ''}"
        for t in trials
    )
    print(f"\n{precision}:\n{table}")
    assert not any(t.problems for t in trials), f"resumed runs differ from the uninterrupted run:\n{table}"
    hits = Counter(phase for t in trials for phase in t.phases)
    missing = [phase for phase in PHASES if not hits[phase]]
    assert not missing, f"no kill landed during {missing}:\n{table}"
    resumed = sum(hits[phase] for phase in hits if phase not in (BEFORE_FIRST, "finished") and "missed" not in phase)
    assert resumed >= 10, f"only {resumed} kills were resumed:\n{table}"
    assert sum(t.restarts for t in trials) >= 1, f"no kill landed {BEFORE_FIRST}:\n{table}"
