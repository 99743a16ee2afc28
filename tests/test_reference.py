"""The recipe reference: docs/recipes.md is current and complete, and the JSON Schema that editors use agrees
with tlhub on the shipped recipes and on the mistakes a recipe author makes most."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from tests.conftest import REPO
from tlhub import plugins
from tlhub.cli import main
from tlhub.recipe import Recipe, apply_overrides, section_model
from tlhub.reference import JSON_SCHEMA_DIALECT, recipe_json_schema, recipe_reference

DOCS = REPO / "docs" / "recipes.md"
SHIPPED = sorted((REPO / "recipes").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = recipe_json_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_docs_are_current() -> None:
    assert DOCS.read_text(encoding="utf-8") == recipe_reference(), (
        "docs/recipes.md is stale: regenerate it with `tlhub schema --markdown > docs/recipes.md`"
    )


def _keys(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, Any, type[BaseModel] | None]]:
    """``(dotted path, field, section model or None)`` for every key under ``model``, sections included."""
    for name, field in model.model_fields.items():
        section = section_model(field.annotation)  # optional sections (train.early_stopping) included
        yield f"{prefix}{name}", field, section
        if section is not None:
            yield from _keys(section, f"{prefix}{name}.")


def _every_documented_model() -> list[tuple[type[BaseModel], str]]:
    found = plugins.registry()
    models: list[tuple[type[BaseModel], str]] = [(Recipe, "")]
    models += [(m.options, "model.options.") for m in found.modalities.values() if m.options is not None]
    models += [(s.options, "data.load_options.") for s in found.sources.values() if s.options is not None]
    return models


def test_every_key_is_documented_with_its_default() -> None:
    docs = recipe_reference()
    missing = []
    for model, prefix in _every_documented_model():
        for path, field, section in _keys(model, prefix):
            if section is not None:  # a heading of its own, then its keys' table
                if not re.search(rf"^#+ `{re.escape(path)}`$", docs, re.MULTILINE):
                    missing.append(f"{path}: no heading")
                continue
            row = re.search(rf"^\| `{re.escape(path)}` \| ([^|]*) \| ([^|]*) \|", docs, re.MULTILINE)
            if row is None:
                missing.append(f"{path}: no row")
                continue
            default = row.group(2).strip()
            if field.is_required():
                if default != "required":
                    missing.append(f"{path}: required, shown with default {default!r}")
            else:
                expected = to_jsonable_python(field.get_default(call_default_factory=True, validated_data={}))
                if not (default.startswith("`") and yaml.safe_load(default.strip("`")) == expected):
                    missing.append(f"{path}: default {expected!r}, shown as {default!r}")
    assert missing == [], "\n".join(missing)


def test_strategy_blocks_and_sections_are_in_recipe_order() -> None:
    headings = re.findall(r"^#{2,6} `([a-z_.]+)`$", recipe_reference().split("## Plugin options")[0], re.MULTILINE)
    sections = [path for path, _, section in _keys(Recipe, "") if section is not None]
    assert headings == sections, headings


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_recipe_fits_the_schema(path: Path, validator: Draft202012Validator) -> None:
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == [], errors


def _recipe(name: str) -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load((REPO / "recipes" / name).read_text()))


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    return apply_overrides(data, {path: value})


BAD = [
    # (recipe, key path, value, where the schema must object)
    ("digits_vit.yaml", "train.epohcs", 3, "$.train"),
    ("digits_vit.yaml", "train.epochs", True, "$.train.epochs"),
    ("digits_vit.yaml", "train.epochs", "3", "$.train.epochs"),
    ("digits_vit.yaml", "train.learning_rate", 5, "$.train.learning_rate"),
    ("digits_vit.yaml", "train.scheduler", "cosine_with_min_lr", "$.train.scheduler"),
    ("digits_vit.yaml", "tuning.lora.r", 0, "$.tuning.lora.r"),
    ("digits_vit.yaml", "model.options", {"size": 3}, "$.model.options"),  # image takes no options
    ("digits_vit.yaml", "data.load_options", {"n": 3}, "$.data.load_options"),  # sklearn_digits reads none
    ("sms_spam_bert.yaml", "model.options", {"max_lenght": 3}, "$.model.options"),
    ("sms_spam_bert.yaml", "model.options.max_length", 1, "$.model.options.max_length"),
    ("spoken_digits_wav2vec2.yaml", "data.load_options", {"nope": 1}, "$.data.load_options"),
    ("pretrain_wav2vec2_words.yaml", "data.load_options.clips_per_word", 2.5, "$.data.load_options.clips_per_word"),
]


@pytest.mark.parametrize(("recipe", "path", "value", "where"), BAD, ids=[f"{p}={v!r}" for _, p, v, _ in BAD])
def test_the_schema_refuses_bad_values(
    recipe: str, path: str, value: Any, where: str, validator: Draft202012Validator
) -> None:
    errors = {e.json_path: e.message for e in validator.iter_errors(_set(_recipe(recipe), path, value))}
    assert list(errors) == [where], errors


def test_free_load_options_of_a_datasets_source_pass(validator: Draft202012Validator) -> None:
    data = _set(_recipe("sms_spam_bert.yaml"), "data.load_options.nope", 1)  # csv: load_dataset's keywords
    assert list(validator.iter_errors(data)) == []


def test_cli_prints_the_schema_and_the_reference() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["$schema"] == JSON_SCHEMA_DIALECT, result.output[:500]
    result = CliRunner().invoke(main, ["schema", "--markdown"])
    assert result.exit_code == 0, result.output
    assert result.output == recipe_reference()


def test_schema_command_stays_light() -> None:
    code = (
        "import sys; from tlhub.reference import recipe_json_schema, recipe_reference; "
        "recipe_json_schema(); recipe_reference(); "
        "print([m for m in ('torch', 'transformers', 'datasets', 'peft', 'accelerate') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
