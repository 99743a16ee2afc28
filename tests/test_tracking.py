"""What a run records as it trains: the per-step log in run.json, the trackers (train.report_to) through
Accelerate, and curves.png; plus the confusion-matrix picture the evaluation report draws."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

import tlhub
from tests.conftest import digits_recipe, write_recipe
from tlhub.errors import RecipeError
from tlhub.recipe import TRACKERS, Recipe, validate_recipe

EPOCHS, STEPS_PER_EPOCH = 2, 4  # 120 training digits (12 per class) in batches of 32


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory: pytest.TempPathFactory, tiny_vit: Path) -> Path:
    """A tiny run logging every step to TensorBoard."""
    out = tmp_path_factory.mktemp("tracked") / "digits"
    recipe = digits_recipe(
        tiny_vit,
        out,
        train={"epochs": EPOCHS, "learning_rate": 1e-2, "logging_steps": 1, "report_to": ["tensorboard"]},
    )
    return tlhub.run(Recipe.model_validate(recipe)).output_dir


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar TensorBoard holds in ``folder``: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every point
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_the_log_records_every_logging_step(tracked_run: Path) -> None:
    info = json.loads((tracked_run / "run.json").read_text())
    log = info["log"]
    assert [e["step"] for e in log] == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    assert [e["epoch"] for e in log] == [s / STEPS_PER_EPOCH for s in range(1, EPOCHS * STEPS_PER_EPOCH + 1)]
    assert all(set(e) == {"step", "epoch", "train_loss", "learning_rate"} for e in log)
    rates = [e["learning_rate"] for e in log]
    assert rates == sorted(rates, reverse=True) and rates[0] < 1e-2 and rates[-1] == 0.0  # linear decay to 0
    # One batch per step: each epoch's mean training loss is the mean of its steps' losses.
    for epoch in info["history"]:
        steps = [e["train_loss"] for e in log if epoch["epoch"] - 1 < e["epoch"] <= epoch["epoch"]]
        assert epoch["train_loss"] == pytest.approx(sum(steps) / len(steps))


def test_tensorboard_holds_the_log_and_the_validation_metrics(tracked_run: Path) -> None:
    info = json.loads((tracked_run / "run.json").read_text())
    manifest = (tracked_run / ".tlhub-manifest").read_text().split()
    assert "logs" in manifest, "--overwrite must remove the trackers' files too"
    found = scalars(tracked_run / "logs" / tracked_run.name)
    log = info["log"]
    assert found["train/loss"] == [(e["step"], pytest.approx(e["train_loss"], rel=1e-6)) for e in log]
    assert found["train/learning_rate"] == [(e["step"], pytest.approx(e["learning_rate"], rel=1e-6)) for e in log]
    epoch_end = [STEPS_PER_EPOCH * h["epoch"] for h in info["history"]]
    for name in ("accuracy", "loss"):
        expected = [
            (step, pytest.approx(h[f"validation_{name}"], rel=1e-6))
            for step, h in zip(epoch_end, info["history"], strict=True)
        ]
        assert found[f"validation/{name}"] == expected, name
    assert "validation/examples" not in found


def png_size(data: bytes) -> tuple[int, int]:
    import PIL.Image

    with PIL.Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


def test_a_finished_run_draws_its_curves(tracked_run: Path) -> None:
    width, height = png_size((tracked_run / "curves.png").read_bytes())
    assert 1000 <= width <= 2000 and 300 <= height <= 800, (width, height)
    assert "curves.png" in (tracked_run / ".tlhub-manifest").read_text().split()


@pytest.mark.parametrize("classes", [3, 40])
def test_confusion_matrix_is_a_png_sized_to_its_classes(classes: int) -> None:
    from tlhub.plots import confusion_matrix

    matrix = [[(5 if i == j else (i + j) % 3) for j in range(classes)] for i in range(classes)]
    labels = [f"class name {i}" for i in range(classes)]
    width, height = png_size(confusion_matrix(matrix, labels, f"test split: {classes} classes"))
    assert 300 <= width <= 2000 and 300 <= height <= 2000, (width, height)
    with pytest.raises(ValueError, match="3x3 matrix"):
        confusion_matrix([[1, 2]], ["a", "b", "c"], "wrong")


def test_curves_draw_without_a_log() -> None:
    from tlhub.plots import curves

    history = [{"epoch": 1, "train_loss": 1.0, "validation_accuracy": 0.5, "validation_loss": 0.9}]
    assert png_size(curves([], history, "accuracy"))[0] > 0


def test_trackers_are_those_accelerate_supports() -> None:
    from accelerate.utils import LoggerType

    assert sorted(TRACKERS) == sorted(t for t in LoggerType.list() if t != "all")


def refused(result: Any) -> str:
    errors = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def test_an_unknown_tracker_is_a_recipe_error(cli, tmp_path: Path, tiny_vit: Path) -> None:
    path = write_recipe(
        tmp_path / "r.yaml", digits_recipe(tiny_vit, tmp_path / "out", train={"report_to": ["tensorbord"]})
    )
    line = refused(cli("validate", path))
    assert line.endswith(
        f"{path}: train.report_to: 'tensorbord' is not a known tracker (known: {', '.join(sorted(TRACKERS))}); "
        "did you mean 'tensorboard'?"
    ), line
    assert not (tmp_path / "out").exists()


def test_a_tracker_that_is_not_installed_stops_validate(
    cli, tmp_path: Path, tiny_vit: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import accelerate.tracking

    monkeypatch.setattr(accelerate.tracking, "_available_trackers", [])  # as if no tracker were installed
    path = write_recipe(
        tmp_path / "r.yaml", digits_recipe(tiny_vit, tmp_path / "out", train={"report_to": ["tensorboard"]})
    )
    line = refused(cli("validate", path))
    assert line.endswith(
        f"{path}: train.report_to: 'tensorboard' is not installed; pip install tensorboard, "
        "or remove it from train.report_to"
    ), line


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "Input should be greater than 0"),
        (-3, "Input should be greater than 0"),
        (2.5, "Input should be a valid integer"),
        (True, "Input should be a valid integer"),
        ("10", "Input should be a valid integer"),
        (None, "Input should be a valid integer"),
    ],
)
def test_logging_steps_must_be_a_positive_integer(tmp_path: Path, value: Any, message: str) -> None:
    with pytest.raises(RecipeError) as info:
        validate_recipe(digits_recipe("ckpt", tmp_path / "out", train={"logging_steps": value}), "r.yaml")
    (problem,) = info.value.problems
    assert problem.startswith(f"train.logging_steps: {message}"), problem


def test_a_tracker_listed_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as info:
        validate_recipe(
            digits_recipe("ckpt", tmp_path / "out", train={"report_to": ["tensorboard", "tensorboard"]}), "r.yaml"
        )
    assert info.value.problems == ["train.report_to: tracker tensorboard listed more than once"]
