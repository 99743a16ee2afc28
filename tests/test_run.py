"""Whole runs on a tiny random ViT and scikit-learn's real digits: outputs, strategies, resume, processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import tlhub
from tests.conftest import digits_recipe, needs_loopback, write_recipe
from tlhub.plugins import modalities, sources
from tlhub.recipe import Recipe

TLHUB = [sys.executable, "-m", "tlhub"]
# save_pretrained writes the checkpoint-compatible (transformers 4) tensor names.
QUERY = "vit.encoder.layer.0.attention.attention.query.weight"


def splits_of(recipe: Recipe) -> Any:
    from tlhub.data import load_splits

    return load_splits(recipe.data, sources())


def predict(model: torch.nn.Module, processor: Any, recipe: Recipe) -> torch.Tensor:
    """Class predictions of ``model`` on the recipe's test split, through the plugin's own encoder."""
    image = modalities()["image"]
    split = splits_of(recipe).test
    encode = image.call("make_encoder", processor=processor, config=model.config)
    model.eval()
    with torch.no_grad():
        logits = model(**encode(split[recipe.data.input_column])).logits
    return logits.argmax(-1)


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_vit: Path) -> dict[str, Any]:
    """One short run per strategy, shared by the tests below."""
    results = {}
    for strategy in ("full", "head", "lora"):
        out = tmp_path_factory.mktemp("runs") / strategy
        recipe = Recipe.model_validate(
            digits_recipe(tiny_vit, out, tuning={"strategy": strategy}, train={"epochs": 2, "learning_rate": 1e-2})
        )
        results[strategy] = (recipe, tlhub.run(recipe))
    return results


def test_run_writes_a_model_folder_metrics_recipe_and_card(runs: dict[str, Any]) -> None:
    recipe, result = runs["full"]
    out = result.output_dir
    assert {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "metrics.json",
        "recipe.yaml",
        "README.md",
        "run.json",
    } <= {p.name for p in out.iterdir()}
    assert not (out / "checkpoints").exists(), "a finished run drops its resumable checkpoints"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"validation", "test"} and metrics == result.metrics
    assert metrics["test"]["examples"] == 360  # 20% of 1,797 digits, stratified
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {str(i): str(i) for i in range(10)}
    card = (out / "README.md").read_text()
    for fact in (
        "pipeline_tag: image-classification",
        "classifier.weight: pretrained 5x32 dropped, new 10x32",
        "images of mode L converted to RGB",
        "images of 8x8 resized to 16x16",
        "Trainable parameters:",
        "the plugin image (tlhub 0.1.0)",
    ):
        assert fact in card, fact
    # how long it took and where: minutes, training's share of them, processes, device and threads
    assert re.search(
        r"- wall time: \d+\.\d min \(\d+\.\d min of it in training steps\) on 1 process\(es\) "
        r"on cpu, \d+ CPU thread\(s\) each",
        card,
    ), card
    assert tlhub.load_recipe(out / "recipe.yaml") == recipe
    versions = json.loads((out / "run.json").read_text())["versions"]
    assert versions["plugin"] == "image (tlhub 0.1.0)" and versions["transformers"].startswith("5.")
    assert set(versions) >= {"python", "tlhub", "torch", "torchaudio", "datasets", "accelerate", "peft"}


def test_head_leaves_every_pretrained_tensor_bit_identical(runs: dict[str, Any], tiny_vit: Path) -> None:
    _, result = runs["head"]
    before, after = tensors(tiny_vit), tensors(result.output_dir)
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        if name.startswith("classifier."):
            assert tensor.shape != after[name].shape  # 5 old classes -> 10 new ones
        else:
            assert torch.equal(tensor, after[name]), f"{name} changed under the head strategy"


def test_full_changes_the_pretrained_tensors(runs: dict[str, Any], tiny_vit: Path) -> None:
    _, result = runs["full"]
    before, after = tensors(tiny_vit), tensors(result.output_dir)
    assert not torch.equal(before[QUERY], after[QUERY])


def test_lora_adapter_reloads_to_the_same_predictions(runs: dict[str, Any], tiny_vit: Path) -> None:
    from peft import PeftModel
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    recipe, result = runs["lora"]
    out = result.output_dir
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_vit.resolve())
    assert adapter["modules_to_save"] == ["classifier"]
    processor = AutoImageProcessor.from_pretrained(out, backend="pil")
    base = AutoModelForImageClassification.from_pretrained(
        adapter["base_model_name_or_path"], config=AutoConfig.from_pretrained(out), ignore_mismatched_sizes=True
    )
    reloaded = predict(PeftModel.from_pretrained(base, out / "adapter"), processor, recipe)
    merged = predict(AutoModelForImageClassification.from_pretrained(out), processor, recipe)
    labels = torch.tensor(splits_of(recipe).test["label"])
    assert len(reloaded.unique()) > 1, "a model predicting one class would make this test vacuous"
    assert (reloaded == labels).sum().item() == round(result.metrics["test"]["accuracy"] * len(labels))
    assert torch.equal(reloaded, merged)


@pytest.mark.parametrize("strategy", ["full", "head", "lora"])
def test_pipeline_loads_each_output(runs: dict[str, Any], strategy: str) -> None:
    import PIL.Image
    from transformers import pipeline

    _, result = runs[strategy]
    classify = pipeline("image-classification", model=str(result.output_dir))
    (best, *_) = classify(PIL.Image.new("RGB", (8, 8), "white"))
    assert best["label"] in {str(d) for d in range(10)}


def test_run_refuses_to_overwrite_a_finished_run(runs: dict[str, Any], cli) -> None:
    recipe, result = runs["full"]
    path = write_recipe(result.output_dir.parent / "again.yaml", recipe.model_dump(mode="json"))
    outcome = cli("run", path)
    assert outcome.exit_code == 2 and "holds a finished run of" in outcome.output, outcome.output


def test_an_interrupted_run_resumes_and_finishes(tmp_path: Path, tiny_vit: Path) -> None:
    out = tmp_path / "out"
    recipe = digits_recipe(
        tiny_vit,
        out,
        data={"train_samples_per_class": None},
        train={"epochs": 6, "batch_size": 16, "checkpoint_steps": 20},
    )
    path = write_recipe(tmp_path / "r.yaml", recipe)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [*TLHUB, "run", str(path)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("checkpoints/checkpoint_*/COMPLETE")):
        assert process.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "metrics.json").exists()

    refused = subprocess.run([*TLHUB, "run", str(path)], env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "an interrupted run of" in refused.stderr and "pass --resume" in refused.stderr

    resumed = subprocess.run([*TLHUB, "run", str(path), "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    info = json.loads((out / "run.json").read_text())
    assert info["finished"] and [h["epoch"] for h in info["history"]] == [1, 2, 3, 4, 5, 6]
    assert json.loads((out / "metrics.json").read_text())["test"]["examples"] == 360


@needs_loopback
def test_two_processes_evaluate_the_whole_split(tmp_path: Path, tiny_vit: Path) -> None:
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    out = tmp_path / "out"
    recipe = digits_recipe(tiny_vit, out, train={"epochs": 1, "eval_batch_size": 64})
    path = write_recipe(tmp_path / "r.yaml", recipe)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "tlhub"]
    done = subprocess.run(
        [*torchrun, "run", str(path)], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(2 process(es)" in done.stdout, done.stdout[:600]
    processes = json.loads((out / "run.json").read_text())["processes"]
    assert processes["processes"] == 2 and processes["local_processes"] == 2, processes
    # torchrun hands each process OMP_NUM_THREADS (1 unless it was set), which tlhub follows
    assert processes["threads_from"] == "OMP_NUM_THREADS", processes
    assert processes["threads"] == int(os.environ.get("OMP_NUM_THREADS") or 1), processes
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["examples"] == 360 and metrics["validation"]["examples"] == 144
    # The gathered accuracy is the accuracy of the saved model over the whole test split.
    parsed = Recipe.model_validate(recipe)
    model = AutoModelForImageClassification.from_pretrained(out)
    predictions = predict(model, AutoImageProcessor.from_pretrained(out, backend="pil"), parsed)
    labels = torch.tensor(splits_of(parsed).test["label"])
    assert (predictions == labels).sum().item() == round(metrics["test"]["accuracy"] * len(labels))


def test_early_stopping_stops_a_stalled_run_and_keeps_the_best_epoch(tmp_path: Path, tiny_vit: Path) -> None:
    out = tmp_path / "out"
    # A step too small to change any prediction: validation accuracy stalls from the first epoch.
    train = {"epochs": 8, "learning_rate": 1e-9, "early_stopping": {"patience": 2}}
    result = tlhub.run(Recipe.model_validate(digits_recipe(tiny_vit, out, train=train)))
    info = json.loads((out / "run.json").read_text())
    assert [h["epoch"] for h in info["history"]] == [1, 2, 3], info["history"]
    assert info["stopped_early"] == (
        "after epoch 3 of 8: validation accuracy did not rise by more than 0 for 2 epoch(s) (train.early_stopping)"
    )
    assert info["best_epoch"] == 1
    # The saved model is the best epoch's: its validation score is that epoch's.
    assert result.metrics["validation"]["accuracy"] == info["history"][0]["validation_accuracy"]
    assert "Training stopped early, after epoch 3 of 8" in (out / "README.md").read_text()


def test_threads_follow_the_recipe_the_environment_or_the_usable_cpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tlhub.engine import set_threads, usable_cpus
    from tlhub.recipe import TrainSection

    before = torch.get_num_threads()
    try:
        assert set_threads(TrainSection(threads=3), local_processes=1) == (3, "train.threads")
        assert torch.get_num_threads() == 3
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert set_threads(TrainSection(), local_processes=1) == (1, "OMP_NUM_THREADS")
        monkeypatch.delenv("OMP_NUM_THREADS")
        cpus = len(os.sched_getaffinity(0))
        threads, why = set_threads(TrainSection(), local_processes=2)
        assert threads == max(1, cpus // 2) and why == f"{cpus} usable CPU(s) / 2 local process(es)"
    finally:
        torch.set_num_threads(before)
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")  # a container allowed 1.5 CPUs
    assert usable_cpus(quota) == min(cpus, 2)
    quota.write_text("max 100000\n")
    assert usable_cpus(quota) == cpus
    assert usable_cpus(tmp_path / "missing") == cpus


def test_run_json_records_processes_device_precision_and_threads(runs: dict[str, Any]) -> None:
    _, result = runs["full"]
    processes = json.loads((result.output_dir / "run.json").read_text())["processes"]
    assert processes["processes"] == 1 and processes["device"] == "cpu" and processes["mixed_precision"] == "no"
    assert processes["threads"] >= 1 and processes["threads_from"]


def test_train_compile_compiles_the_model_and_saves_a_plain_folder(tmp_path: Path, tiny_vit: Path) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModelForImageClassification

    out = tmp_path / "out"
    result = tlhub.run(Recipe.model_validate(digits_recipe(tiny_vit, out, train={"compile": True})))
    assert json.loads((out / "run.json").read_text())["processes"]["compile"] == "inductor"
    assert result.metrics["test"]["examples"] == 360
    keys = load_file(str(out / "model.safetensors")).keys()
    assert not [k for k in keys if "_orig_mod" in k] and QUERY in keys  # the compiled wrapper is not saved
    AutoModelForImageClassification.from_pretrained(out)
