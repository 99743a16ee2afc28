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
        "tuning.lora.target_modules: 'query' not in the model's adaptable layers "
        "(candidates by layer type: Conv2d: projection; Linear: fc1, fc2, k_proj, o_proj, q_proj, v_proj)"
    ]


def tiny_resnet() -> torch.nn.Module:
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=3)
    return ResNetForImageClassification(config)


def test_lora_adapts_convolutions_and_says_what_a_convolutional_model_offers() -> None:
    image = modalities()["image"]  # its default targets are a ViT's: a ResNet has none of them
    model = tiny_resnet()
    (problem,) = check_strategy("lora", model, STRATEGIES["lora"].Options(), image)
    assert problem == (
        "tuning.lora.target_modules (unset, so the 'image' plugin's lora_targets ['q_proj', 'v_proj']): "
        "'q_proj', 'v_proj' not in the model's adaptable layers (candidates by layer type: Conv2d: convolution)"
    ), problem
    peft_model = apply_strategy("lora", model, STRATEGIES["lora"].Options(r=2, target_modules=["convolution"]), image)
    names = trainable(peft_model)
    assert any("convolution.lora_A" in n for n in names) and any("convolution.lora_B" in n for n in names)
    assert all("lora_" in n or ".classifier." in n for n in names), names
    logits = peft_model(pixel_values=torch.randn(2, 3, 32, 32)).logits
    assert logits.shape == (2, 3)


def test_lora_adapts_embeddings_and_names_a_target_in_the_head() -> None:
    from transformers import BertConfig, BertForSequenceClassification

    text = modalities()["text"]
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_labels=2
    )
    model = BertForSequenceClassification(config)
    options = STRATEGIES["lora"].Options(r=2, target_modules=["word_embeddings", "query"])
    peft_model = apply_strategy("lora", model, options, text)
    names = trainable(peft_model)
    assert any("word_embeddings.lora_embedding_A" in n for n in names), names
    assert any("query.lora_A" in n for n in names)
    (problem,) = check_strategy(
        "lora",
        BertForSequenceClassification(config),
        options.model_copy(update={"target_modules": ["classifier"]}),
        text,
    )
    head = "tuning.lora.target_modules: 'classifier' is in the new head (bert.pooler, classifier)"
    assert problem.startswith(head), problem
    assert "Embedding: position_embeddings, token_type_embeddings, word_embeddings" in problem
