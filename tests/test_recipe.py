"""The recipe schema: every shipped recipe validates; bad recipes list every problem with its key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, digits_recipe, write_recipe
from tlhub import plugins
from tlhub.errors import RecipeError
from tlhub.recipe import Recipe, apply_overrides, load_recipe, validate_recipe

SHIPPED = sorted((REPO / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_recipe_validates(path: Path) -> None:
    recipe = load_recipe(path, plugins=set(plugins.modalities()))
    assert isinstance(recipe, Recipe)
    assert path.read_text().startswith("#"), "a shipped recipe opens with a comment giving its command"


def test_every_field_has_a_description() -> None:
    from pydantic import BaseModel

    def walk(model: type[BaseModel]) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(f"{model.__name__}.{name}")
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                missing += walk(field.annotation)
        return missing

    assert walk(Recipe) == []


def problems_of(data: dict, plugins: set[str] | None = None) -> list[str]:
    with pytest.raises(RecipeError) as info:
        validate_recipe(data, "r.yaml", plugins=plugins)
    return info.value.problems


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    data = digits_recipe("ckpt", tmp_path / "out")
    data["tuning"] = {"strategy": "lora2"}
    data["train"]["epochs"] = "many"
    data["train"]["epohcs"] = 3
    data["model"]["plugin"] = "imag"
    problems = problems_of(data, plugins={"image"})
    assert (
        "tuning.strategy: 'lora2' is not a known strategy (known: full, head, lora); did you mean 'lora'?" in problems
    )
    assert any(p.startswith("train.epochs: Input should be a valid integer") and "'many'" in p for p in problems)
    assert any(p.startswith("train.epohcs: unknown key") and "did you mean 'epochs'?" in p for p in problems)
    assert "model.plugin: 'imag' is not a known plugin (known: image); did you mean 'image'?" in problems
    assert len(problems) == 4, problems


def test_unknown_key_lists_the_valid_keys(tmp_path: Path) -> None:
    data = digits_recipe("ckpt", tmp_path / "out")
    data["data"]["colum"] = "x"
    (problem,) = problems_of(data)
    assert problem.startswith(
        "data.colum: unknown key (valid keys here: source, name, data_files, load_options, input_column"
    )


def test_strategy_options_are_checked_against_the_strategy(tmp_path: Path) -> None:
    data = digits_recipe("ckpt", tmp_path / "out", tuning={"strategy": "lora", "lora": {"r": 0, "rank": 4}})
    problems = problems_of(data)
    assert any(p.startswith("tuning.lora.r: Input should be greater than 0") for p in problems)
    valid = "r, alpha, dropout, target_modules, learning_rate"
    assert any(p.startswith(f"tuning.lora.rank: unknown key (valid keys here: {valid})") for p in problems)


def test_checkpoint_or_config_but_not_both(tmp_path: Path) -> None:
    data = digits_recipe("ckpt", tmp_path / "out")
    data["model"]["config"] = {"model_type": "vit"}
    assert problems_of(data) == [
        "model: set exactly one of model.checkpoint (fine-tune) or model.config (train from scratch)"
    ]


def test_missing_test_split_definition(tmp_path: Path) -> None:
    data = digits_recipe("ckpt", tmp_path / "out")
    del data["data"]["test_fraction"]
    assert problems_of(data) == ["data: set data.splits.test or data.test_fraction: a run needs a test split"]


def test_overrides_set_dotted_keys_with_yaml_values() -> None:
    data = apply_overrides(
        {"train": {"epochs": 3}},
        ["train.epochs=1", "tuning.strategy=head", "output_dir=/tmp/x", "eval.metrics=[accuracy, f1]"],
    )
    assert data == {
        "train": {"epochs": 1},
        "tuning": {"strategy": "head"},
        "output_dir": "/tmp/x",
        "eval": {"metrics": ["accuracy", "f1"]},
    }


def test_override_without_equals_is_an_error() -> None:
    with pytest.raises(RecipeError, match=r"override 'train\.epochs': expected KEY=VALUE"):
        apply_overrides({}, ["train.epochs"])


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  plugin: image\n  checkpoint: [unclosed\ndata: {}\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert str(info.value).startswith(f"{path}: YAML syntax error at line ")


def test_missing_recipe_file(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_resolved_recipe_round_trips(tmp_path: Path) -> None:
    from tlhub.recipe import dump_recipe, read_yaml

    path = write_recipe(tmp_path / "r.yaml", digits_recipe("ckpt", tmp_path / "out"))
    recipe = load_recipe(path)
    (tmp_path / "resolved.yaml").write_text(dump_recipe(recipe))
    assert load_recipe(tmp_path / "resolved.yaml") == recipe
    assert read_yaml(tmp_path / "resolved.yaml")["train"]["mixed_precision"] == "no"


def test_each_registered_strategy_has_its_options_block() -> None:
    from tlhub.recipe import TuningSection
    from tlhub.tuning import STRATEGIES

    assert set(TuningSection.model_fields) == {"strategy", *STRATEGIES}
    for name, module in STRATEGIES.items():
        assert TuningSection.model_fields[name].annotation is module.Options
