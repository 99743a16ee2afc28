"""Each first-party plugin's backbone blocks (``layers``) and its head split off (``features``, ``head_logits``),
on tiny random models of every family: the split reproduces the model's logits on a padded evaluation batch,
the blocks hold every parameter outside the head exactly once, in the order the forward runs them, and the
features depend on no trainable head parameter."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pytest
import torch

from tests.conftest import tiny_audio_config, tiny_vit_config
from tlhub import plugins
from tlhub.modality import Modality
from tlhub.model import build_model
from tlhub.tuning.parameters import is_under


def check_split(modality: Modality, model: Any, batch: dict[str, Any]) -> None:
    """``head_logits(features(batch))`` is the model's logits, and ``features`` reads no trainable head tensor."""
    model.eval()
    config = model.config
    trainable_head = [
        (name, p)
        for name, p in model.named_parameters()
        if is_under(name, modality.head(config)) and not is_under(name, modality.fixed(config))
    ]
    assert trainable_head
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        # A new head starts near zero (std 0.02): logits of order 1e-3 would pass float32's atol (1e-5) however
        # wrong. Weights of std 1/sqrt(fan-in) make them large next to it, so the tolerance means what it says.
        for _, p in trainable_head:
            p.normal_(0.0, p.shape[-1] ** -0.5 if p.ndim == 2 else 0.1, generator=generator)
        expected = model(**batch).logits
        vectors = modality.call("features", model=model, batch=batch)
        logits = modality.call("head_logits", model=model, features=vectors)
    assert vectors.ndim == 2 and vectors.shape[0] == expected.shape[0], vectors.shape
    assert expected.abs().max() > 1e-2, expected
    torch.testing.assert_close(logits, expected)

    vectors = modality.call("features", model=model, batch=batch)
    assert vectors.requires_grad  # the backbone is in the graph: an empty graph would make the next check vacuous
    grads = torch.autograd.grad(vectors.sum(), [p for _, p in trainable_head], allow_unused=True)
    touched = [name for (name, _), grad in zip(trainable_head, grads, strict=True) if grad is not None]
    assert touched == [], f"features read trainable head tensors {touched}"


def check_blocks(modality: Modality, model: Any, batch: dict[str, Any]) -> None:
    """Every parameter outside the head and the fixed modules lies in exactly one block, head parameters in
    none; every name a block gives is a module (or a top-level parameter) of the model, and the forward runs
    the blocks' modules input side first."""
    config = model.config
    blocks = modality.blocks(config)
    modules = dict(model.named_modules())
    parameters = dict(model.named_parameters())
    for block in blocks:
        for name in block:
            assert name in modules or name in parameters, f"block {block} names '{name}', which the model lacks"
        assert any(is_under(p, block) for p in parameters), f"block {block} holds no parameter"
    outside = (*modality.head(config), *modality.fixed(config))
    for name in parameters:
        holders = [block for block in blocks if is_under(name, block)]
        expected = 0 if is_under(name, outside) else 1
        assert len(holders) == expected, f"{name} lies in {len(holders)} blocks: {holders}"

    order: list[int] = []
    hooks = [
        modules[name].register_forward_pre_hook(lambda *_, i=index: order.append(i))
        for index, block in enumerate(blocks)
        for name in block
        if name in modules
    ]
    try:
        model.eval()
        with torch.no_grad():
            model(**batch)
    finally:
        for hook in hooks:
            hook.remove()
    assert order == sorted(order) and set(order) == set(range(len(blocks))), order


# --- image -----------------------------------------------------------------------------------------------


def test_vit_features_blocks_and_head() -> None:
    import PIL.Image

    modality = plugins.modalities()["image"]
    torch.manual_seed(0)
    config = tiny_vit_config(num_hidden_layers=3)
    model, _ = build_model(modality, None, config)
    processor = modality.call("new_processor", config=config)
    rng = np.random.default_rng(0)
    examples = [
        {"image": PIL.Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)), "label": i % 5}
        for i, (h, w) in enumerate([(16, 16), (20, 12), (9, 30)])
    ]
    batch = modality.collate(processor, config, None, ["image"], "label")(examples)
    assert modality.blocks(config) == [
        ("vit.embeddings",),
        ("vit.layers.0",),
        ("vit.layers.1",),
        ("vit.layers.2", "vit.layernorm"),
    ]
    check_split(modality, model, batch)
    check_blocks(modality, model, batch)


# --- audio -----------------------------------------------------------------------------------------------

AUDIO_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "wav2vec2-group": ("wav2vec2", dict(feat_extract_norm="group")),  # no attention mask: the mean of every frame
    "wav2vec2-layer": ("wav2vec2", dict(feat_extract_norm="layer")),
    "wav2vec2-weighted": ("wav2vec2", dict(feat_extract_norm="layer", use_weighted_layer_sum=True)),
    "wav2vec2-stable": ("wav2vec2", dict(feat_extract_norm="layer", do_stable_layer_norm=True)),
    "wav2vec2-stable-weighted-masking": (
        "wav2vec2",
        dict(feat_extract_norm="layer", do_stable_layer_norm=True, use_weighted_layer_sum=True, mask_time_prob=0.05),
    ),
    "hubert": ("hubert", dict(feat_extract_norm="layer", mask_time_prob=0.05)),
    "hubert-stable-weighted": (
        "hubert",
        dict(feat_extract_norm="layer", do_stable_layer_norm=True, use_weighted_layer_sum=True),
    ),
    "wavlm": ("wavlm", dict(feat_extract_norm="layer")),
    "wavlm-stable-weighted": (
        "wavlm",
        dict(feat_extract_norm="layer", do_stable_layer_norm=True, use_weighted_layer_sum=True),
    ),
}


@pytest.mark.parametrize("case", list(AUDIO_CASES))
def test_audio_features_blocks_and_head(case: str) -> None:
    from tlhub_audio import Options

    model_type, overrides = AUDIO_CASES[case]
    modality = plugins.modalities()["audio"]
    torch.manual_seed(0)
    config = tiny_audio_config(model_type, num_hidden_layers=3, **overrides)
    model, _ = build_model(modality, None, config, Options())
    if config.use_weighted_layer_sum:
        with torch.no_grad():  # they start equal, where a sum that skipped the softmax would go unnoticed
            model.get_parameter("layer_weights").normal_()
    processor = modality.call("new_processor", config=config)
    rng = np.random.default_rng(0)
    # Unequal lengths: the batch is padded to the longest clip (and masked where the extractor masks).
    examples = [
        {"audio": (0.3 * rng.standard_normal(n)).astype(np.float32), "label": i % 2}
        for i, n in enumerate([1600, 700, 1130])
    ]
    batch = modality.collate(processor, config, Options(), ["audio"], "label")(examples)
    assert ("attention_mask" in batch) == (overrides["feat_extract_norm"] == "layer")
    check_split(modality, model, batch)
    check_blocks(modality, model, batch)


def test_audio_blocks_follow_the_encoder_variant() -> None:
    modality = plugins.modalities()["audio"]
    base = modality.blocks(tiny_audio_config("wav2vec2", num_hidden_layers=2))
    assert base == [
        ("wav2vec2.feature_extractor", "wav2vec2.feature_projection"),
        ("wav2vec2.encoder.pos_conv_embed", "wav2vec2.encoder.layer_norm"),  # normalises the layers' input
        ("wav2vec2.encoder.layers.0",),
        ("wav2vec2.encoder.layers.1",),
    ]
    stable = modality.blocks(
        tiny_audio_config("hubert", num_hidden_layers=2, do_stable_layer_norm=True, use_weighted_layer_sum=True)
    )
    assert stable[1:] == [
        ("hubert.encoder.pos_conv_embed",),
        ("hubert.encoder.layers.0",),
        ("hubert.encoder.layers.1", "hubert.encoder.layer_norm", "layer_weights"),  # normalises their output
    ]


# --- text ------------------------------------------------------------------------------------------------

TEXTS = ["win cash prize free call claim urgent award now", "see you", "thanks mum love dinner"]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("model_type", ["bert", "roberta", "xlm-roberta", "distilbert"])
def test_text_features_blocks_and_head(tiny_text: Any, model_type: str, pooling: Literal["mean", "cls"]) -> None:
    from tlhub_text import Options

    from tlhub.checkpoint import read_checkpoint_config

    modality = plugins.modalities()["text"]
    checkpoint = str(tiny_text(model_type))
    _, config = read_checkpoint_config(checkpoint)
    config.num_labels = 2
    options = Options(pooling=pooling, max_length=16)
    model, _ = build_model(modality, checkpoint, config, options)
    processor = modality.call("load_processor", checkpoint=checkpoint)
    examples = [{"text": text, "label": i % 2} for i, text in enumerate(TEXTS)]
    batch = modality.collate(processor, model.config, options, ["text"], "label")(examples)
    assert (batch["attention_mask"] == 0).any()  # padded: the texts differ in length
    layer = {"distilbert": "distilbert.transformer.layer"}.get(model_type, f"{model.base_model_prefix}.encoder.layer")
    pretrained = (f"{model.base_model_prefix}.embeddings", f"{layer}.0", f"{layer}.1")
    assert modality.blocks(model.config) == [(name,) for name in pretrained]  # never the pooling layer (index 2)
    check_split(modality, model, batch)
    check_blocks(modality, model, batch)


def test_text_sentence_pairs(tiny_text: Any) -> None:
    from tlhub_text import Options

    from tlhub.checkpoint import read_checkpoint_config

    modality = plugins.modalities()["text"]
    checkpoint = str(tiny_text("bert"))
    _, config = read_checkpoint_config(checkpoint)
    options = Options(pooling="cls", max_length=16)
    model, _ = build_model(modality, checkpoint, config, options)
    processor = modality.call("load_processor", checkpoint=checkpoint)
    examples = [{"a": a, "b": b, "label": 0} for a, b in zip(TEXTS, reversed(TEXTS), strict=True)]
    batch = modality.collate(processor, model.config, options, ["a", "b"], "label")(examples)
    assert batch["token_type_ids"].any()  # the second sentence's segment
    check_split(modality, model, batch)
