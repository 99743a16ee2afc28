"""The tuning strategies on a tiny random ViT: which parameters train."""

from __future__ import annotations

import pytest
import torch
from transformers import ViTForImageClassification

from tests.conftest import tiny_vit_config
from tlhub.errors import RecipeError
from tlhub.plugins import modalities
from tlhub.tuning import STRATEGIES, apply_strategy, check_strategy, count_parameters


@pytest.fixture
def model() -> ViTForImageClassification:
    torch.manual_seed(0)
    return ViTForImageClassification(tiny_vit_config())


def trainable(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_head_trains_only_the_classifier(model: ViTForImageClassification) -> None:
    image = modalities()["image"]
    apply_strategy("head", model, STRATEGIES["head"].Options(), image)
    assert trainable(model) == {"classifier.weight", "classifier.bias"}
    assert count_parameters(model) == (32 * 5 + 5, sum(p.numel() for p in model.parameters()))


def test_full_trains_everything_but_what_it_is_told_to_freeze(model: ViTForImageClassification) -> None:
    image = modalities()["image"]
    apply_strategy("full", model, STRATEGIES["full"].Options(freeze=["vit.embeddings"]), image)
    names = {n for n, _ in model.named_parameters()}
    assert trainable(model) == {n for n in names if not n.startswith("vit.embeddings.")}


def test_full_refuses_unknown_modules(model: ViTForImageClassification) -> None:
    image = modalities()["image"]
    options = STRATEGIES["full"].Options(freeze=["wav2vec2.feature_extractor"])
    (problem,) = check_strategy("full", model, options, image)
    assert problem.startswith(
        "tuning.full.freeze: no module named 'wav2vec2.feature_extractor' (modules: classifier, vit, vit.embeddings"
    )
    with pytest.raises(RecipeError):
        apply_strategy("full", model, options, image)


def test_lora_adapts_attention_and_trains_the_new_head(model: ViTForImageClassification) -> None:
    image = modalities()["image"]
    peft_model = apply_strategy("lora", model, STRATEGIES["lora"].Options(r=4), image)
    names = trainable(peft_model)
    assert names, "LoRA must leave something to train"
    assert all("lora_" in n or ".classifier." in n for n in names), names
    assert any("q_proj.lora_A" in n for n in names) and any("v_proj.lora_B" in n for n in names)
    assert not any("k_proj.lora" in n or "fc1.lora" in n for n in names)
    assert any("classifier.modules_to_save" in n for n in names)


def test_lora_targets_are_checked(model: ViTForImageClassification) -> None:
    image = modalities()["image"]
    options = STRATEGIES["lora"].Options(target_modules=["q_proj", "query"])
    assert check_strategy("lora", model, options, image) == [
        "tuning.lora.target_modules: 'query' not in the model "
        "(candidate linear modules: fc1, fc2, k_proj, o_proj, q_proj, v_proj)"
    ]
