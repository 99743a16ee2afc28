"""Gradual unfreezing and layer-wise learning-rate decay: which parameters train in which epoch, at which rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import ViTForImageClassification

from tests.conftest import digits_recipe, tiny_vit_config
from tlhub import engine
from tlhub.errors import RecipeError
from tlhub.plugins import modalities
from tlhub.recipe import TrainSection, validate_recipe
from tlhub.tuning import STRATEGIES, apply_strategy, check_strategy, strategy_schedule

TOP = ("vit.layers.1.", "vit.layernorm.")  # the top block: the last layer with the final LayerNorm


def group_of(name: str) -> int:
    """The schedule's group of a parameter of the tiny 2-layer ViT: 0 head, 1 top block, 2 layer 0, 3 embeddings."""
    if name.startswith("classifier."):
        return 0
    if name.startswith(TOP):
        return 1
    if name.startswith("vit.layers.0."):
        return 2
    assert name.startswith("vit.embeddings."), name
    return 3


@pytest.fixture
def model() -> ViTForImageClassification:
    torch.manual_seed(0)
    return ViTForImageClassification(tiny_vit_config())


def full_options(**values: Any) -> Any:
    return STRATEGIES["full"].Options.model_validate(values)


def test_the_schedule_groups_the_plugins_blocks_from_the_top(model: ViTForImageClassification) -> None:
    image = modalities()["image"]
    options = full_options(unfreeze={"head_epochs": 2, "layers_per_epoch": 1}, layer_decay=0.5)
    apply_strategy("full", model, options, image)
    schedule = strategy_schedule("full", model, options, image)
    assert schedule is not None
    assert [sorted({group_of(n) for n in group}) for group in schedule.groups] == [[0], [1], [2], [3]]
    assert sorted(n for g in schedule.groups for n in g) == sorted(n for n, _ in model.named_parameters())
    assert schedule.scales == [1.0, 0.5, 0.25, 0.125]
    # epochs 1-2 the head alone, then one more block each epoch, down to the embeddings
    assert [schedule.training_groups(epoch) for epoch in range(7)] == [1, 1, 2, 3, 4, 4, 4]
    at_once = strategy_schedule("full", model, full_options(unfreeze={"head_epochs": 1}), image)
    assert at_once is not None and [at_once.training_groups(e) for e in range(3)] == [1, 4, 4]
    assert strategy_schedule("full", model, full_options(), image) is None
    assert strategy_schedule("head", model, STRATEGIES["head"].Options(), image) is None


def test_layer_decay_gives_each_group_its_rate(model: ViTForImageClassification) -> None:
    image = modalities()["image"]
    options = full_options(layer_decay=0.8)
    apply_strategy("full", model, options, image)
    schedule = strategy_schedule("full", model, options, image)
    optimizer = engine.make_optimizer(model, TrainSection(learning_rate=1e-3), schedule)
    names = {id(p): n for n, p in model.named_parameters()}
    rates = {names[id(p)]: group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert set(rates) == set(names.values())
    for name, rate in rates.items():
        assert rate == pytest.approx(1e-3 * 0.8 ** group_of(name)), name
    assert schedule is not None and schedule.head_epochs == 0  # decay alone: every group trains from the start
    # without a schedule: one group at the peak rate
    plain = engine.make_optimizer(model, TrainSection(learning_rate=1e-3))
    assert [g["lr"] for g in plain.param_groups] == [1e-3]


def test_gradual_unfreezing_trains_one_more_block_each_epoch(
    tmp_path: Path, tiny_vit: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Snapshots of the weights at each epoch's validation: what changed in each epoch, and at which rate."""
    import tlhub

    snapshots: list[dict[str, torch.Tensor]] = []
    rates: list[list[float]] = []
    evaluate_split = engine.evaluate_split

    def snapshot(accelerator: Any, model: Any, *args: Any) -> Any:
        snapshots.append({k: v.detach().clone() for k, v in accelerator.unwrap_model(model).state_dict().items()})
        return evaluate_split(accelerator, model, *args)

    make_optimizer = engine.make_optimizer

    def recording(*args: Any) -> Any:
        optimizer = make_optimizer(*args)
        rates.append([group["lr"] for group in optimizer.param_groups])
        return optimizer

    monkeypatch.setattr(engine, "evaluate_split", snapshot)
    monkeypatch.setattr(engine, "make_optimizer", recording)
    recipe = digits_recipe(
        tiny_vit,
        tmp_path / "run",
        tuning={
            "strategy": "full",
            "full": {"unfreeze": {"head_epochs": 1, "layers_per_epoch": 1}, "layer_decay": 0.5},
        },
        train={"epochs": 4, "scheduler": "constant", "warmup_ratio": 0.0, "weight_decay": 0.01},
    )
    start = {k: v.clone() for k, v in ViTForImageClassification.from_pretrained(tiny_vit).state_dict().items()}
    tlhub.run(validate_recipe(recipe))

    assert rates == [[1e-3, 5e-4, 2.5e-4, 1.25e-4]]
    before = start
    for epoch, after in enumerate(snapshots):
        changed = {group_of(k) for k in after if k in before and not torch.equal(before[k], after[k])}
        if epoch == 0:
            changed.add(0)  # the new head starts from new random values, not the checkpoint's
        assert changed == set(range(epoch + 1)), f"epoch {epoch + 1}: groups {changed} changed"
        before = after


def test_frozen_layers_run_in_eval_mode(model: ViTForImageClassification) -> None:
    image = modalities()["image"]
    apply_strategy("head", model, STRATEGIES["head"].Options(), image)
    model.train()
    engine.frozen_in_eval(model)
    assert not model.vit.training and all(not m.training for m in model.vit.modules())
    assert model.training and model.classifier.training


def test_a_plugin_without_layers_cannot_unfreeze(model: ViTForImageClassification) -> None:
    from dataclasses import replace

    image = replace(modalities()["image"], layers=())
    problems = check_strategy("full", model, full_options(unfreeze={"head_epochs": 1}, layer_decay=0.9), image)
    assert problems == [
        f"tuning.full.{key}: plugin 'image' names no layers (Modality.layers) to unfreeze or decay by depth; "
        "unset it, or use a plugin that does"
        for key in ("unfreeze", "layer_decay")
    ]


def test_head_epochs_must_leave_epochs_for_the_backbone(tiny_vit: Path, tmp_path: Path) -> None:
    recipe = digits_recipe(
        tiny_vit,
        tmp_path / "r",
        tuning={"strategy": "full", "full": {"unfreeze": {"head_epochs": 3}}},
        train={"epochs": 3},
    )
    with pytest.raises(RecipeError) as raised:
        validate_recipe(recipe)
    assert "tuning.full.unfreeze.head_epochs: 3 of train.epochs 3 leaves no epoch" in str(raised.value)
    with pytest.raises(RecipeError, match=r"tuning\.full\.layer_decay"):
        validate_recipe({**recipe, "tuning": {"strategy": "full", "full": {"layer_decay": 1.5}}})
