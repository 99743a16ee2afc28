"""The example third-party plugin package (examples/plugins/tlhub-convnets), installed as a user installs it:
ResNet and ConvNeXt fine-tuned end to end with head, full and lora; pipeline loads what each run saved."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch

import tlhub
from tests.conftest import digits_recipe
from tlhub import testing
from tlhub.recipe import Recipe

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tlhub_convnets") is None,
    reason="the example plugin is not installed: pip install ./examples/plugins/tlhub-convnets (the README's test "
    "command does)",
)


@pytest.fixture(scope="module", autouse=True)
def convnets_loaded() -> Any:
    """The plugin in this process's plugin manager, as its entry point would put it (the test session loads
    tlhub's own plugins only, TLHUB_LOAD_PLUGINS); the entry point itself is checked in a process of its own."""
    import tlhub_convnets

    from tlhub.plugins import load_plugins, pm

    load_plugins()
    pm.register(tlhub_convnets, name="convnets")
    yield
    pm.unregister(tlhub_convnets)


@pytest.fixture(scope="module", params=["resnet", "convnext"])
def tiny_convnet(request: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised ResNet or ConvNeXt with 5 classes and its image processor, as a folder."""
    from transformers import (
        ConvNextConfig,
        ConvNextForImageClassification,
        ConvNextImageProcessorPil,
        ResNetConfig,
        ResNetForImageClassification,
    )

    torch.manual_seed(0)
    if request.param == "resnet":
        config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=5)
        model: Any = ResNetForImageClassification(config)
    else:
        config = ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=5)
        model = ConvNextForImageClassification(config)
    folder = tmp_path_factory.mktemp(f"tiny-{request.param}")
    model.save_pretrained(folder)
    ConvNextImageProcessorPil(size={"shortest_edge": 32}, crop_pct=1.0).save_pretrained(folder)
    return folder


def test_pip_installed_it_is_found_through_its_entry_point() -> None:
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TLHUB_LOAD_PLUGINS"}  # every installed plugin
    listed = subprocess.run(
        [sys.executable, "-m", "tlhub", "plugins", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    (info,) = [row for row in json.loads(listed.stdout) if row["name"] == "convnets"]
    assert (info["distribution"], info["version"], info["modalities"]) == ("tlhub-convnets", "0.1.0", ["convnets"])
    assert info["error"] is None and info["hooks"] == ["register_modalities"]


@pytest.mark.parametrize("strategy", ["head", "full", "lora"])
def test_head_full_and_lora_train_and_the_pipeline_loads_the_result(
    tiny_convnet: Path, tmp_path: Path, strategy: str
) -> None:
    from sklearn.datasets import load_digits
    from transformers import pipeline

    recipe = digits_recipe(
        tiny_convnet,
        tmp_path / "out",
        model={"plugin": "convnets", "checkpoint": str(tiny_convnet)},
        tuning={"strategy": strategy, "lora": {"r": 2}},
    )
    result = tlhub.run(Recipe.model_validate(recipe))
    assert result.metrics["test"]["examples"] == 360
    if strategy == "head":
        testing.assert_head_only(tiny_convnet, result.output_dir)
    else:
        assert testing.changed_tensors(tiny_convnet, result.output_dir), f"{strategy} trained nothing"
    if strategy == "lora":  # the adapter, loaded onto the base with peft, predicts what the merged model does
        batch = {"pixel_values": torch.randn(4, 3, 32, 32)}
        merged, reloaded = testing.lora_reload_logits(result.output_dir, "AutoModelForImageClassification", batch)
        assert torch.allclose(merged, reloaded, atol=1e-5)
    card = (result.output_dir / "README.md").read_text()
    assert "the plugin convnets (tlhub-convnets 0.1.0)" in card
    digits = load_digits()
    image = __import__("PIL.Image").Image.fromarray((digits.images[0] * 255 / 16).astype("uint8"))
    (best, *_) = pipeline("image-classification", model=str(result.output_dir))(image)
    assert best["label"] in {str(d) for d in range(10)}


def test_it_reads_a_folder_of_images_made_by_the_testing_helpers(tiny_convnet: Path, tmp_path: Path) -> None:
    photos = testing.fake_images(tmp_path / "photos", classes=("cat", "dog", "owl"), per_class=10)
    recipe = digits_recipe(
        tiny_convnet,
        tmp_path / "out",
        model={"plugin": "convnets", "checkpoint": str(tiny_convnet)},
        data={"source": str(photos), "input_column": "image", "train_samples_per_class": None},
    )
    result = tlhub.run(Recipe.model_validate(recipe))
    assert result.metrics["test"]["examples"] == 6  # 20% of 30, stratified


def test_the_input_type_check_refuses_text_for_it(tiny_convnet: Path, tmp_path: Path) -> None:
    csv = tmp_path / "texts.csv"
    csv.write_text("text,label\n" + "\n".join(f"message {i},{i % 2}" for i in range(40)) + "\n")
    recipe = digits_recipe(
        tiny_convnet,
        tmp_path / "out",
        model={"plugin": "convnets", "checkpoint": str(tiny_convnet)},
        data={"source": "csv", "data_files": str(csv), "input_column": "text", "train_samples_per_class": None},
    )
    with pytest.raises(tlhub.InputTypeError, match="was pretrained on images, but data column 'text' holds text"):
        tlhub.make_plan(Recipe.model_validate(recipe))
