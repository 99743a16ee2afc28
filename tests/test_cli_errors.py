"""Bad input: one clear message naming the key or file and what would be valid, exit code 2, no
traceback, and nothing written to the output directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import numpy as np
import PIL.Image
import pytest

from tests.conftest import digits_recipe, write_recipe


def assert_refused(result: Any, *fragments: str, output_dir: Path | None = None) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    if output_dir is not None:
        assert not output_dir.exists(), f"{output_dir} was written: {list(output_dir.iterdir())}"


@pytest.fixture
def recipe_file(tmp_path: Path, tiny_vit: Path):
    """Write a digits recipe on the tiny ViT with the given section updates; return its path."""

    def make(**sections: Any) -> Path:
        return write_recipe(tmp_path / "recipe.yaml", digits_recipe(tiny_vit, tmp_path / "out", **sections))

    return make


def image_parquet(
    folder: Path, splits: dict[str, int], label_dtype: str = "class", labels: list[int] | None = None
) -> dict[str, str]:
    """Write parquet files of tiny random RGB images; ``splits`` maps split name -> number of rows."""
    rng = np.random.default_rng(0)
    label_feature = datasets.ClassLabel(names=["a", "b", "c"]) if label_dtype == "class" else datasets.Value("int64")
    features = datasets.Features({"image": datasets.Image(), "label": label_feature})
    files = {}
    for name, rows in splits.items():
        images = [PIL.Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)) for _ in range(rows)]
        values = labels[:rows] if labels else [i % 3 for i in range(rows)]
        path = folder / f"{name}.parquet"
        datasets.Dataset.from_dict({"image": images, "label": values}, features=features).to_parquet(str(path))
        files[name] = str(path)
    return files


def test_unknown_recipe_key(cli, recipe_file, tmp_path: Path) -> None:
    path = recipe_file(train={"epohcs": 2})
    assert_refused(cli("validate", path), f"{path}: train.epohcs: unknown key", "did you mean 'epochs'?")


def test_wrong_type(cli, recipe_file) -> None:
    path = recipe_file(train={"batch_size": "large"})
    assert_refused(cli("validate", path), "train.batch_size: Input should be a valid integer", "'large'")


def test_missing_recipe_file(cli, tmp_path: Path) -> None:
    assert_refused(cli("run", tmp_path / "nope.yaml"), "nope.yaml: recipe file not found")


def test_yaml_syntax_error_names_the_line(cli, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text('model:\n  plugin: image\n  checkpoint: "unclosed\ndata:\n  source: x\n')
    assert_refused(cli("validate", path), "broken.yaml: YAML syntax error at line ")


def test_unknown_plugin(cli, recipe_file) -> None:
    path = recipe_file(model={"plugin": "imgae"})
    assert_refused(
        cli("validate", path),
        "model.plugin: 'imgae' is not a known plugin (known: audio, image, text); did you mean 'image'?",
    )


def test_unknown_strategy(cli, recipe_file) -> None:
    path = recipe_file(tuning={"strategy": "lora2"})
    assert_refused(
        cli("validate", path),
        "tuning.strategy: 'lora2' is not a known strategy (known: full, head, lora); did you mean 'lora'?",
    )


def test_override_is_validated_like_the_file(cli, recipe_file) -> None:
    assert_refused(cli("validate", recipe_file(), "tuning.strategy=heads"), "did you mean 'head'?")


def test_checkpoint_that_does_not_exist(cli, recipe_file, tmp_path: Path) -> None:
    path = recipe_file(model={"plugin": "image", "checkpoint": str(tmp_path / "missing-ckpt")})
    assert_refused(cli("run", path), "model.checkpoint: ", "missing-ckpt' does not exist", output_dir=tmp_path / "out")


def test_checkpoint_folder_without_a_model(cli, recipe_file, tmp_path: Path) -> None:
    (tmp_path / "empty-ckpt").mkdir()
    path = recipe_file(model={"plugin": "image", "checkpoint": str(tmp_path / "empty-ckpt")})
    assert_refused(cli("run", path), "empty-ckpt' holds no model: no config.json", output_dir=tmp_path / "out")


def test_audio_checkpoint_with_image_data(cli, recipe_file, tiny_wav2vec2: Path, tmp_path: Path) -> None:
    path = recipe_file(model={"plugin": "image", "checkpoint": str(tiny_wav2vec2)})
    assert_refused(
        cli("run", path),
        "(model_type 'wav2vec2') was pretrained on audio, but data column 'image' holds images",
        "use plugin image with a checkpoint of type vit",
        output_dir=tmp_path / "out",
    )


def test_image_checkpoint_with_text_data(cli, recipe_file, tmp_path: Path) -> None:
    csv = tmp_path / "sms.csv"
    csv.write_text("text,label\nhello there,ham\nWIN a prize now,spam\n")
    path = recipe_file(data={"source": "csv", "data_files": {"train": str(csv)}, "input_column": "text"})
    assert_refused(
        cli("run", path),
        "(model_type 'vit') was pretrained on images, but data column 'text' holds text",
        "use plugin text with a checkpoint of type bert, distilbert, roberta, xlm-roberta",
        output_dir=tmp_path / "out",
    )


def test_label_column_missing_names_the_columns(cli, recipe_file, tmp_path: Path) -> None:
    path = recipe_file(data={"label_column": "digit"})
    assert_refused(
        cli("validate", path), "data.label_column: column 'digit' is not in the data (columns: image, label)"
    )


def test_empty_split(cli, recipe_file, tmp_path: Path) -> None:
    files = image_parquet(tmp_path, {"train": 30, "test": 0})
    data = {
        "source": "parquet",
        "data_files": files,
        "splits": {"train": "train", "test": "test"},
        "test_fraction": None,
    }
    path = recipe_file(data=data)
    assert_refused(cli("run", path), "data.splits.test: the test split is empty", output_dir=tmp_path / "out")


def test_labels_outside_num_labels(cli, recipe_file, tmp_path: Path) -> None:
    files = image_parquet(tmp_path, {"train": 40}, label_dtype="int", labels=[i % 5 for i in range(40)])
    data = {"source": "parquet", "data_files": files, "labels": ["a", "b", "c"], "train_samples_per_class": None}
    path = recipe_file(data=data)
    assert_refused(
        cli("run", path),
        "data.label_column: label 3 in column 'label' is outside 0..2 (data.labels names 3 classes)",
        output_dir=tmp_path / "out",
    )


def test_unreadable_image_file_is_named(cli, recipe_file, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        folder = tmp_path / "photos" / label
        folder.mkdir(parents=True)
        for i in range(10):
            PIL.Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (tmp_path / "photos" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    path = recipe_file(data={"source": str(tmp_path / "photos"), "train_samples_per_class": None})
    assert_refused(cli("run", path), "image file '", "broken.png' cannot be read", output_dir=tmp_path / "out")


def test_lora_targets_the_model_lacks(cli, recipe_file) -> None:
    path = recipe_file(tuning={"strategy": "lora", "lora": {"target_modules": ["query", "value"]}})
    assert_refused(
        cli("validate", path),
        "tuning.lora.target_modules: 'query', 'value' not in the model's adaptable layers",
        "(candidates by layer type: Conv2d: projection; Linear: fc1, fc2, k_proj, o_proj, q_proj, v_proj)",
    )


def test_non_empty_output_dir_of_another_run(cli, recipe_file, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert_refused(cli("run", recipe_file()), "output_dir: ", "is not empty and holds no tlhub run", "--overwrite")
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_plugin_options_are_checked_by_the_plugin(cli, recipe_file) -> None:
    path = recipe_file(model={"options": {"crop": 0.9}})
    assert_refused(cli("validate", path), "model.options.crop: unknown key (valid keys here: augment)")


def test_validate_says_what_it_checked(cli, recipe_file, tiny_vit: Path) -> None:
    result = cli("validate", recipe_file())
    assert result.exit_code == 0, result.output
    assert f"ok: plugin 'image' (image), checkpoint {tiny_vit.resolve()} [vit], data 'sklearn_digits'" in result.output
