"""The plan: what `tlhub validate` refuses before training, each with one line naming the key; and what it
accepts but states in the model card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import digits_recipe, sms_recipe, write_recipe, write_sms_tsv
from tests.test_cli_errors import assert_refused

SCRATCH_VIT = {
    "plugin": "image",
    "config": {
        "model_type": "vit",
        "image_size": 16,
        "patch_size": 4,
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    },
}


@pytest.fixture
def recipe_file(tmp_path: Path, tiny_vit: Path):
    """Write a digits recipe on the tiny ViT with the given section updates; return its path."""

    def make(**sections: Any) -> Path:
        recipe = digits_recipe(tiny_vit, tmp_path / "out", **{k: v for k, v in sections.items() if k != "output_dir"})
        recipe["output_dir"] = sections.get("output_dir", recipe["output_dir"])
        return write_recipe(tmp_path / "recipe.yaml", recipe)

    return make


def scratch(**config: Any) -> dict[str, Any]:
    return {**SCRATCH_VIT, "checkpoint": None, "config": {**SCRATCH_VIT["config"], **config}}


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({"train": {"scheduler": "reduce_lr_on_plateau"}}, "train.scheduler: Input should be 'linear', 'cosine'"),
        ({"train": {"seed": -1}}, "train.seed: Input should be greater than or equal to 0 (got -1)"),
        ({"data": {"split_seed": 2**32}}, "data.split_seed: Input should be less than or equal to 4294967295"),
        ({"train": {"epochs": True}}, "train.epochs: Input should be a valid integer (got true, a boolean)"),
        ({"train": {"learning_rate": 1e30}}, "train.learning_rate: Input should be less than or equal to 1"),
        ({"train": {"weight_decay": float("inf")}}, "train.weight_decay: inf is not a finite number"),
        ({"data": {"label_column": "image"}}, "data.label_column: 'image' is also the input column"),
        ({"data": {"labels": ["a", "b", "a"]}}, "data.labels: label a listed more than once"),
        ({"eval": {"metrics": ["accuracy", "f1", "f1"]}}, "eval.metrics: metric f1 listed more than once"),
        ({"data": {"splits": {"train": "train", "test": "train"}}}, "data.splits.test: 'train' is the training split"),
        ({"tuning": {"strategy": "lora", "lora": {"target_modules": []}}}, "tuning.lora.target_modules: List should"),
        ({"tuning": {"strategy": "full", "full": {"freeze": ["classifier"]}}}, "tuning.full.freeze: 'classifier' is"),
        ({"train": {"mixed_precision": "fp16"}}, "train.mixed_precision: fp16 needs a GPU"),
        ({"data": {"data_files": "x.csv"}}, "data.data_files: source 'sklearn_digits' does not read it"),
        ({"data": {"load_options": {"sep": ","}}}, "data.load_options: source 'sklearn_digits' does not read it"),
        ({"model": {"options": {"bad_img": 1}}}, "model.options.bad_img: unknown key (valid keys here: augment)"),
        ({"model": scratch(hidden_size=-32)}, "model.config: hidden_size is -32; a size must be positive"),
        ({"model": scratch(hidden_size="big")}, "model.config.hidden_size: ViTConfig refuses it"),
        ({"model": scratch(hidden_size=30, num_attention_heads=4)}, "hidden_size 30 is not a multiple of"),
        ({"model": scratch(patch_size=32)}, "model.config: patch_size 32 is larger than image_size 16"),
        ({"model": scratch(hiden_size=32)}, "model.config.hiden_size: not a field of ViTConfig; did you mean"),
        ({"data": {"test_fraction": 0.0001}}, "data.test_fraction: 0.0001 of the 1797 examples"),
        ({"data": {"test_fraction": 0.99, "validation_fraction": 0.99}}, "data.validation_fraction: the 17 examples"),
        (
            {"train": {"early_stopping": {"patience": 2}}, "eval": {"select_split": "none"}},
            "train.early_stopping: watches the validation metric, but eval.select_split is none",
        ),
        ({"train": {"early_stopping": {"patience": 0}}}, "train.early_stopping.patience: Input should be greater"),
        ({"output_dir": "."}, "output_dir: '.' is the working directory"),
        ({"output_dir": ""}, "output_dir: String should have at least 1 character"),
        ({"output_dir": "runs/" + "x" * 300}, "a file system allows 255 per name"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_refused_by_validate(cli, recipe_file, tmp_path: Path, sections: dict[str, Any], expected: str) -> None:
    path = recipe_file(**sections)
    assert_refused(cli("validate", path), f"{path}: ", expected)
    assert_refused(cli("run", path), expected, output_dir=tmp_path / "out")


def test_the_recipe_folder_and_the_checkpoint_folder_are_not_run_folders(cli, recipe_file, tiny_vit: Path) -> None:
    path = recipe_file()
    assert_refused(cli("validate", path, f"output_dir={path.parent}"), "is the recipe's folder")
    assert_refused(cli("validate", path, f"output_dir={tiny_vit}"), "is the base checkpoint's folder")
    assert_refused(cli("validate", path, f"output_dir={tiny_vit.parent}"), "is a folder (a parent of the")


def test_a_checkpoint_without_its_processor_file(cli, recipe_file, tiny_vit: Path, tmp_path: Path) -> None:
    copy = tmp_path / "no-processor"
    shutil.copytree(tiny_vit, copy)
    (copy / "preprocessor_config.json").unlink()
    path = recipe_file(model={"plugin": "image", "checkpoint": str(copy)})
    assert_refused(cli("validate", path), f"model.checkpoint: the preprocessing of '{copy}' does not load")
    (copy / "preprocessor_config.json").write_text("{not json")
    assert_refused(cli("validate", path), f"model.checkpoint: the preprocessing of '{copy}' does not load")


def test_text_options_are_checked_against_the_checkpoint(cli, tiny_text: Any, tmp_path: Path) -> None:
    data = write_sms_tsv(tmp_path / "sms.tsv")
    recipe = sms_recipe(tiny_text("bert"), data, tmp_path / "out", model={"options": {"max_length": 100_000}})
    recipe["model"]["plugin"] = "text"
    recipe["model"]["checkpoint"] = str(tiny_text("bert"))
    path = write_recipe(tmp_path / "r.yaml", recipe)
    assert_refused(cli("validate", path), "model.options.max_length: 100000 is more than the model's 64 positions")
    recipe["model"]["options"] = {"max_lenght": 16}
    write_recipe(path, recipe)
    assert_refused(
        cli("validate", path),
        "model.options.max_lenght: unknown key (valid keys here: max_length, pooling, missing_text, "
        "max_unknown_share, unknown_tokens); did you mean 'max_length'?",
    )
    recipe["model"] = {"plugin": "text", "config": {"model_type": "bert", "hidden_size": 32, "num_attention_heads": 2}}
    write_recipe(path, recipe)
    assert_refused(cli("validate", path), "model.config: a text model needs a tokenizer")


def test_pooling_cls_on_a_mean_pooled_checkpoint(cli, tiny_text: Any, tmp_path: Path) -> None:
    data = write_sms_tsv(tmp_path / "sms.tsv")
    first = write_recipe(tmp_path / "a.yaml", sms_recipe(tiny_text("bert"), data, tmp_path / "a", train={"epochs": 1}))
    assert cli("run", first).exit_code == 0
    again = sms_recipe(tmp_path / "a", data, tmp_path / "b", model={"options": {"max_length": 16, "pooling": "cls"}})
    assert_refused(
        cli("validate", write_recipe(tmp_path / "b.yaml", again)),
        "model.options.pooling: 'cls', but the checkpoint's last layer is a tlhub mean-pooling layer",
    )


def test_a_single_class_and_a_class_without_training_examples(cli, recipe_file, tmp_path: Path) -> None:
    from tests.test_cli_errors import image_parquet

    files = image_parquet(tmp_path, {"train": 20, "test": 6}, labels=[0] * 20)
    data = {
        "source": "parquet",
        "data_files": files,
        "splits": {"train": "train", "test": "test"},
        "test_fraction": None,
        "validation_fraction": 0.2,
        "train_samples_per_class": None,
    }
    assert_refused(
        cli("validate", recipe_file(data=data)), "data.splits.train: the training split has 1 class(es) ('a')"
    )
    files = image_parquet(tmp_path, {"train": 20, "test": 6}, labels=[0, 1] * 10)
    assert_refused(
        cli("validate", recipe_file(data={**data, "data_files": files})),
        "data.labels: class(es) 'c' have no training example",
    )


def test_legal_but_notable_settings_are_stated_in_the_card(cli, recipe_file, tmp_path: Path) -> None:
    path = recipe_file(train={"batch_size": 4096}, data={"train_samples_per_class": 1000})
    result = cli("run", path)
    assert result.exit_code == 0, result.output
    card = (tmp_path / "out" / "README.md").read_text()
    assert "train.batch_size 4096 is larger than the 1293 training examples: each epoch is one batch of 1293" in card
    assert "train: at most 1000 examples per class kept (seed 0); 10 class(es) had fewer and keep all they have" in card
    assert json.loads((tmp_path / "out" / "run.json").read_text())["data"]["sizes"]["train"] == 1293


def test_a_carved_split_that_misses_a_class_is_refused(cli, recipe_file, tmp_path: Path) -> None:
    from tests.test_cli_errors import image_parquet

    # 95 / 3 / 2 examples of a / b / c: a 3% test split, stratified, still holds only 'a'
    files = image_parquet(tmp_path, {"train": 100}, labels=[0] * 95 + [1] * 3 + [2] * 2)
    data = {"source": "parquet", "data_files": files, "test_fraction": 0.03, "train_samples_per_class": None}
    assert_refused(
        cli("validate", recipe_file(data=data)),
        "data.test_fraction: the 3 test examples carved with fraction 0.03 have no example of class(es) 'b', 'c'",
        "use a larger test_fraction",
    )


@pytest.mark.parametrize("key", ["output_dir", "model.checkpoint", "data.source", "data.input_column"])
def test_a_nul_character_in_a_name_is_refused(cli, recipe_file, key: str) -> None:
    assert_refused(cli("validate", recipe_file(), f'{key}="a\\0b"'), f"{key}: holds a NUL character ('a\\x00b')")


def test_a_run_gives_the_callers_sigterm_handler_back(cli, recipe_file) -> None:
    import signal

    before = signal.getsignal(signal.SIGTERM)
    result = cli("run", recipe_file())
    assert result.exit_code == 0, result.output
    assert signal.getsignal(signal.SIGTERM) is before
