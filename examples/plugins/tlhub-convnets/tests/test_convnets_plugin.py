"""tlhub-convnets, tested as its users run it: public tlhub names and tlhub.testing only.

ResNet and ConvNeXt fine-tuned end to end with head, full, lora and the package's own bitfit strategy;
transformers.pipeline loads what each run saved; the input-type check refuses text for them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tlhub_convnets
import torch
import yaml

import tlhub
from tlhub import testing

TLHUB = [sys.executable, "-m", "tlhub"]
EVERY_PLUGIN = {k: v for k, v in os.environ.items() if k != "TLHUB_LOAD_PLUGINS"}  # a subprocess loads all


@pytest.fixture(scope="module", autouse=True)
def plugin() -> Any:
    """The plugin in this process, as its entry point puts it once installed."""
    with testing.registered(tlhub_convnets, name="convnets"):
        yield


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of 12 small pictures each, as class-named folders."""
    return testing.fake_images(tmp_path_factory.mktemp("photos"), classes=("cat", "dog", "owl"), per_class=12, size=32)


def recipe(checkpoint: Path, output: Path, source: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "model": {"plugin": "convnets", "checkpoint": str(checkpoint)},
        "data": {"source": str(source), "input_column": "image", "test_fraction": 0.25, "validation_fraction": 0.15},
        "tuning": {"strategy": "full"},
        "train": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "mixed_precision": "no"},
        "output_dir": str(output),
    }
    for key, section in sections.items():
        values[key] = {**values.get(key, {}), **section}
    return values


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
    listed = subprocess.run(
        [*TLHUB, "plugins", "--json"], env=EVERY_PLUGIN, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    (info,) = [row for row in json.loads(listed.stdout) if row["name"] == "convnets"]
    assert (info["distribution"], info["version"], info["error"]) == ("tlhub-convnets", "0.1.0", None)
    assert info["hooks"] == ["register_modalities", "register_strategies"]
    assert info["modalities"] == ["convnets"] and info["strategies"] == ["bitfit"]


@pytest.mark.parametrize("strategy", ["head", "full", "lora", "bitfit"])
def test_each_strategy_trains_what_it_says_and_the_pipeline_loads_the_result(
    tiny_convnet: Path, photos: Path, tmp_path: Path, strategy: str
) -> None:
    from PIL import Image
    from transformers import pipeline

    values = recipe(tiny_convnet, tmp_path / "out", photos, tuning={"strategy": strategy, "lora": {"r": 2}})
    result = tlhub.run(tlhub.Recipe.model_validate(values))
    assert result.metrics["test"]["examples"] == 9  # a quarter of 36, stratified
    changed = testing.changed_tensors(tiny_convnet, result.output_dir)
    if strategy == "head":
        testing.assert_head_only(tiny_convnet, result.output_dir)
    elif strategy == "bitfit":  # biases and norms only (a batch norm's running statistics follow its training)
        statistics = ("running_mean", "running_var", "num_batches_tracked")
        trained = [name for name in changed if not name.endswith(statistics)]
        assert trained and all(
            name.endswith(".bias") or (name.endswith(".weight") and "norm" in name.split(".")[-2]) for name in trained
        ), trained
    else:
        assert changed, f"{strategy} trained nothing"
    if strategy == "lora":  # the adapter, loaded onto the base with peft, predicts what the merged model does
        batch = {"pixel_values": torch.randn(4, 3, 32, 32)}
        merged, reloaded = testing.lora_reload_logits(result.output_dir, "AutoModelForImageClassification", batch)
        assert torch.allclose(merged, reloaded, atol=1e-5)
    card = (result.output_dir / "README.md").read_text()
    assert "the plugin convnets (tlhub-convnets 0.1.0)" in card and f"`{strategy}` strategy" in card
    (best, *_) = pipeline("image-classification", model=str(result.output_dir))(Image.open(photos / "owl" / "0.png"))
    assert best["label"] in {"cat", "dog", "owl"}


def test_the_input_type_check_refuses_text_for_it(tiny_convnet: Path, tmp_path: Path) -> None:
    texts = testing.fake_texts(tmp_path / "texts.csv", per_class=20)
    values = recipe(tiny_convnet, tmp_path / "out", texts, data={"source": "csv", "data_files": str(texts)})
    values["data"]["input_column"] = "text"
    with pytest.raises(tlhub.InputTypeError, match="was pretrained on images, but data column 'text' holds text"):
        tlhub.make_plan(tlhub.Recipe.model_validate(values))


def test_tlhub_validate_names_the_strategy_among_the_valid_ones(
    tiny_convnet: Path, photos: Path, tmp_path: Path
) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe(tiny_convnet, tmp_path / "out", photos, tuning={"strategy": "bitfix"})))
    checked = subprocess.run([*TLHUB, "validate", str(path)], env=EVERY_PLUGIN, capture_output=True, text=True)
    assert checked.returncode == 2 and "Traceback" not in checked.stderr, checked.stderr
    assert "tuning.strategy: 'bitfix' is not a known strategy" in checked.stderr
    assert "bitfit" in checked.stderr and "did you mean 'bitfit'?" in checked.stderr, checked.stderr
    path.write_text(yaml.safe_dump(recipe(tiny_convnet, tmp_path / "out", photos, tuning={"bitfit": {"norm": False}})))
    checked = subprocess.run([*TLHUB, "validate", str(path)], env=EVERY_PLUGIN, capture_output=True, text=True)
    assert checked.returncode == 2 and "tuning.bitfit.norm: unknown key" in checked.stderr, checked.stderr
    assert "did you mean 'norms'?" in checked.stderr
