"""Head-only training on cached features: the same result as training through the frozen layers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import tlhub
from tests.conftest import digits_recipe
from tlhub import feature_cache
from tlhub.plan import make_plan
from tlhub.recipe import validate_recipe


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    return tmp_path / "hf" / "tlhub" / "features"


def head_recipe(checkpoint: Path, output: Path, **tuning: Any) -> Any:
    return validate_recipe(
        digits_recipe(
            checkpoint,
            output,
            tuning={"strategy": "head", "head": {"learning_rate": 0.01, **tuning}},
            train={"epochs": 3, "mixed_precision": "no"},
        )
    )


def test_cached_features_train_the_same_head_as_the_whole_model(tmp_path: Path, tiny_vit: Path, cache: Path) -> None:
    plain = tlhub.run(head_recipe(tiny_vit, tmp_path / "plain", cache_features=False))
    assert not cache.exists()
    cached = tlhub.run(head_recipe(tiny_vit, tmp_path / "cached"))
    assert sorted(p.suffix for p in cache.iterdir()) == [".arrow", ".arrow"]  # train and validation

    for split in ("validation", "test"):
        for name, value in plain.metrics[split].items():
            assert cached.metrics[split][name] == pytest.approx(value, abs=1e-5), (split, name)
    weights = [load_file(tmp_path / run / "model.safetensors") for run in ("plain", "cached")]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], atol=1e-5, rtol=1e-5, msg=name)


def test_the_cache_is_reused_and_keyed_by_the_data(tmp_path: Path, tiny_vit: Path, cache: Path) -> None:
    tlhub.run(head_recipe(tiny_vit, tmp_path / "a"))
    first = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    tlhub.run(head_recipe(tiny_vit, tmp_path / "b"))
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == first  # read, not computed again
    other = head_recipe(tiny_vit, tmp_path / "c").model_dump()
    other["data"]["split_seed"] = 1
    tlhub.run(validate_recipe(other))
    assert len(list(cache.iterdir())) == 4  # other examples: other files


def test_augmentation_switches_the_cache_off(tmp_path: Path, tiny_vit: Path) -> None:
    recipe = head_recipe(tiny_vit, tmp_path / "r")
    assert make_plan(recipe).head_on_features
    augmented = recipe.model_dump()
    augmented["model"]["options"] = {"augment": {"horizontal_flip": 0.5}}
    plan = make_plan(validate_recipe(augmented))
    assert not plan.head_on_features
    assert "randomly augmented" in (feature_cache.unusable(plan.recipe, plan.modality, plan.options) or "")
    for key, value, why in (
        ("tuning.head.cache_features", False, "cache_features is off"),
        ("tuning.strategy", "full", "the strategy is full, not head"),
    ):
        section, *rest = key.split(".")
        data = recipe.model_dump()
        node = data[section]
        for part in rest[:-1]:
            node = node[part]
        node[rest[-1]] = value
        plan = make_plan(validate_recipe(data))
        assert not plan.head_on_features
        assert why in (feature_cache.unusable(plan.recipe, plan.modality, plan.options) or "")
