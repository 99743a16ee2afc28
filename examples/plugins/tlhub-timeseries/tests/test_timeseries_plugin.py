"""tlhub-timeseries, tested as its users run it: public tlhub names and tlhub.testing only.

A PatchTST classifier is pretrained from scratch on one set of series classes, then fine-tuned on others with
head, full and lora; the new input type is refused beside image data; bad rows are DataErrors naming the row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tlhub_timeseries
import torch
import yaml

import tlhub
from tlhub import testing

TLHUB = [sys.executable, "-m", "tlhub"]
# A tiny PatchTST: windows of 64 steps cut into 8 patches, 2 encoder layers of width 16.
TINY = {
    "model_type": "patchtst",
    "num_input_channels": 1,
    "context_length": 64,
    "patch_length": 8,
    "patch_stride": 8,
    "d_model": 16,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "ffn_dim": 32,
    "use_cls_token": True,
}


@pytest.fixture(scope="module", autouse=True)
def plugin() -> Any:
    """The plugin in this process, as its entry point puts it once installed."""
    with testing.registered(tlhub_timeseries, name="patchtst"):
        yield


def recipe(series: Path, output: Path, **sections: dict[str, Any]) -> tlhub.Recipe:
    values: dict[str, Any] = {
        "model": {"plugin": "patchtst", "checkpoint": None},
        "data": {
            "source": "json",
            "data_files": str(series),
            "input_column": "series",
            "test_fraction": 0.25,
            "validation_fraction": 0.15,
        },
        "tuning": {"strategy": "full"},
        "train": {"epochs": 12, "batch_size": 16, "learning_rate": 0.01, "mixed_precision": "no"},
        "eval": {"metrics": ["accuracy", "balanced_accuracy"], "select_metric": "balanced_accuracy"},
        "output_dir": str(output),
    }
    for key, section in sections.items():
        values[key] = {**values.get(key, {}), **section}
    return tlhub.Recipe.model_validate(values)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PatchTST pretrained by tlhub from scratch (model.config) on four classes of series."""
    folder = tmp_path_factory.mktemp("pretraining")
    data = testing.fake_series(folder / "series.jsonl", classes=("a", "b", "c", "d"), per_class=40, length=(48, 96))
    torch.manual_seed(0)
    result = tlhub.run(recipe(data, folder / "base", model={"checkpoint": None, "config": TINY}, train={"epochs": 25}))
    assert result.metrics["test"]["balanced_accuracy"] >= 0.75, result.metrics
    return result.output_dir


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small task: three classes, series of other lengths, drawn with another seed."""
    folder = tmp_path_factory.mktemp("task")
    return testing.fake_series(
        folder / "task.jsonl", classes=("slow", "mid", "fast"), per_class=16, length=(40, 120), seed=1
    )


def test_its_entry_point_lists_its_hooks() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TLHUB_LOAD_PLUGINS"}  # every installed plugin
    listed = subprocess.run([*TLHUB, "plugins", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    (info,) = [row for row in json.loads(listed.stdout) if row["name"] == "patchtst"]
    assert (info["distribution"], info["version"], info["error"]) == ("tlhub-timeseries", "0.1.0", None)
    assert info["hooks"] == ["register_input_types", "register_metrics", "register_modalities"]
    assert info["input_types"] == ["timeseries"] and info["metrics"] == ["balanced_accuracy"]


@pytest.mark.parametrize("strategy", ["head", "full", "lora"])
def test_a_pretrained_patchtst_fine_tunes_on_new_classes(
    pretrained: Path, task: Path, tmp_path: Path, strategy: str
) -> None:
    torch.manual_seed(0)
    result = tlhub.run(
        recipe(task, tmp_path / "out", model={"checkpoint": str(pretrained)}, tuning={"strategy": strategy})
    )
    test = result.metrics["test"]
    assert test["examples"] == 12 and set(test) >= {"accuracy", "balanced_accuracy"}
    assert test["balanced_accuracy"] > 0.5, test  # chance is 1/3
    card = (result.output_dir / "README.md").read_text()
    assert "the plugin patchtst (tlhub-timeseries 0.1.0)" in card and "pipeline_tag" not in card
    if strategy == "head":
        testing.assert_head_only(pretrained, result.output_dir, head=("head",))
    else:
        assert testing.changed_tensors(pretrained, result.output_dir, skip=("head.",)), f"{strategy} trained nothing"
    if strategy == "lora":  # the adapter on the base predicts what the merged model does
        batch = {"past_values": torch.randn(4, 64, 1), "past_observed_mask": torch.ones(4, 64, 1, dtype=torch.bool)}
        merged, reloaded = testing.lora_reload_logits(
            result.output_dir, "PatchTSTForClassification", batch, output="prediction_logits"
        )
        assert torch.allclose(merged, reloaded, atol=1e-5)
    trained = tlhub.load(result.output_dir)  # its saved processor and the config's num_targets come back
    series = [json.loads(line)["series"] for line in task.read_text().splitlines()[:3]]
    assert [p.label in ("slow", "mid", "fast") for p in trained.predict(series)] == [True] * 3


def test_a_recipe_pairing_it_with_images_is_refused(pretrained: Path, tmp_path: Path) -> None:
    photos = testing.fake_images(tmp_path / "photos")
    bad = recipe(
        tmp_path / "unused.jsonl",
        tmp_path / "out",
        model={"checkpoint": str(pretrained)},
        data={"source": str(photos), "data_files": None, "input_column": "image"},
    )
    with pytest.raises(tlhub.InputTypeError) as refused:
        tlhub.make_plan(bad)
    assert str(refused.value).startswith(
        f"checkpoint {pretrained} (model_type 'patchtst') was pretrained on time series, but data column 'image' "
        "holds images: a model only transfers to the input type it was pretrained on; use plugin image"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ([], "is empty or nested deeper than steps x channels"),
        ([1.0, float("inf")], "holds an infinite value; only numbers and null (missing) are valid"),
        ([None, None], "has no observed value (every value is null or NaN)"),
        (None, "is missing (null); every row needs a series"),
    ],
)
def test_a_bad_row_is_a_data_error_naming_it(pretrained: Path, tmp_path: Path, row: list[Any], problem: str) -> None:
    data = testing.fake_series(tmp_path / "series.jsonl", per_class=6)
    lines = data.read_text().splitlines()
    lines[7] = json.dumps({"series": row, "label": "slow"})
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(tlhub.DataError) as bad:
        tlhub.make_plan(recipe(data, tmp_path / "out", model={"checkpoint": str(pretrained)}))
    assert str(bad.value) == f"data: row 7 of column 'series' {problem}"


def test_series_of_another_shape_are_refused_by_column_or_by_row(pretrained: Path, tmp_path: Path) -> None:
    import datasets

    mixed = testing.fake_series(tmp_path / "mixed.jsonl", per_class=6)
    mixed.write_text(mixed.read_text() + json.dumps({"series": [[1.0, 2.0], [3.0, 4.0]], "label": "slow"}) + "\n")
    with pytest.raises(tlhub.InputTypeError, match="data column 'series' holds List\\(Json"):
        tlhub.make_plan(recipe(mixed, tmp_path / "out", model={"checkpoint": str(pretrained)}))
    two = testing.fake_series(tmp_path / "two.jsonl", per_class=6, channels=2)
    with pytest.raises(
        tlhub.DataError, match=r"row \d+ of column 'series' has 2 channel\(s\) per step; the checkpoint"
    ):
        tlhub.make_plan(recipe(two, tmp_path / "out", model={"checkpoint": str(pretrained)}))

    from tlhub_timeseries.processor import SeriesProcessor

    ragged = datasets.Dataset.from_dict({"series": [[[1.0, 2.0], [3.0]]], tlhub.INDEX_COLUMN: [4]})
    with pytest.raises(tlhub.DataError) as bad:
        tlhub_timeseries.check_data(ragged, ["series"], SeriesProcessor(context_length=8, num_channels=2))
    assert str(bad.value) == (
        "data: row 4 of column 'series' is not a list of numbers or of equally long per-step lists of numbers"
    )


def test_a_window_shorter_than_a_patch_is_refused_before_anything_loads(tmp_path: Path) -> None:
    data = testing.fake_series(tmp_path / "series.jsonl", per_class=6)
    config = {**TINY, "context_length": 4}
    with pytest.raises(tlhub.RecipeError, match=r"model.config.context_length: context_length 4 is shorter than"):
        tlhub.make_plan(recipe(data, tmp_path / "out", model={"checkpoint": None, "config": config}))


def test_the_cli_refuses_a_bad_row_and_a_misspelt_metric_naming_the_valid_ones(
    pretrained: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TLHUB_LOAD_PLUGINS"}
    data = testing.fake_series(tmp_path / "series.jsonl", per_class=6)
    data.write_text(data.read_text() + json.dumps({"series": [1.0, "high"], "label": "slow"}) + "\n")
    path = tmp_path / "recipe.yaml"
    values = recipe(data, tmp_path / "out", model={"checkpoint": str(pretrained)}).model_dump(mode="json")
    values["eval"] = {"metrics": ["balanced_acuracy"]}
    path.write_text(yaml.safe_dump(values))
    checked = subprocess.run([*TLHUB, "validate", str(path)], env=env, capture_output=True, text=True, timeout=300)
    assert checked.returncode == 2 and "Traceback" not in checked.stderr, checked.stderr
    assert "did you mean 'balanced_accuracy'?" in checked.stderr and "balanced_accuracy, f1" in checked.stderr

    values["eval"] = {"metrics": ["balanced_accuracy"], "select_metric": "balanced_accuracy"}
    path.write_text(yaml.safe_dump(values))
    ran = subprocess.run([*TLHUB, "run", str(path)], env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 2 and "Traceback" not in ran.stderr, ran.stderr
    assert "column 'series'" in ran.stderr and not (tmp_path / "out").exists()


def test_the_processor_crops_pads_and_resamples_marking_what_was_not_observed() -> None:
    from tlhub_timeseries.processor import SeriesProcessor

    crop = SeriesProcessor(context_length=4, num_channels=1)
    batch = crop([[1, 2, 3, 4, 5, 6], [7, None]])
    assert batch["past_values"][:, :, 0].tolist() == [[3, 4, 5, 6], [0, 0, 7, 0]]
    assert batch["past_observed_mask"][:, :, 0].tolist() == [[True] * 4, [False, False, True, False]]
    resample = SeriesProcessor(context_length=5, num_channels=2, fit="resample")
    (window,) = resample([[[0, 10], [4, 50]]])["past_values"]
    assert window.tolist() == [[0, 10], [1, 20], [2, 30], [3, 40], [4, 50]]


def test_the_classical_baseline_tells_the_classes_apart_by_their_spectrum(tmp_path: Path) -> None:
    from tlhub_timeseries.processor import SeriesProcessor

    data = testing.fake_series(tmp_path / "s.jsonl", per_class=30)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    series, labels = [r["series"] for r in rows], [r["label"] == "fast" for r in rows]
    estimator = tlhub_timeseries.baseline(SeriesProcessor(context_length=64), seed=0)
    estimator.fit(series[::2], labels[::2])
    probabilities = estimator.predict_proba(series[1::2])
    assert probabilities.shape == (30, 2)
    assert ((probabilities[:, 1] > 0.5) == labels[1::2]).mean() >= 0.9
