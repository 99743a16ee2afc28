"""A ViT classifier's blocks, and its head split off: what the classifier reads, and the classifier alone.

``ViTForImageClassification`` classifies the first token ([CLS]) of the base model's final, layer-normed
output; nothing between that vector and ``classifier`` trains, so the ``head`` strategy may compute it
once per image and train the classifier on the cached vectors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig

# torch loads where it is used: `tlhub plugins` imports this module.

_BASE = "vit"  # ViTForImageClassification.base_model_prefix; this plugin builds ViTs only (model_types)


def layers(config: PretrainedConfig) -> tuple[str | tuple[str, ...], ...]:
    """The patch and position embeddings, then each transformer layer (current transformers 5 keeps them in
    ``vit.layers``); the final LayerNorm goes with the top layer."""
    top = config.num_hidden_layers - 1
    return (
        f"{_BASE}.embeddings",
        *(f"{_BASE}.layers.{i}" for i in range(top)),
        (f"{_BASE}.layers.{top}", f"{_BASE}.layernorm"),
    )


def features(model: Any, batch: dict[str, Any]) -> torch.Tensor:
    """The first token of the base model's final, layer-normed output: what ``classifier`` reads."""
    base = getattr(model, model.base_model_prefix)
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    return base(**inputs).last_hidden_state[:, 0, :]


def head_logits(model: Any, features: torch.Tensor) -> torch.Tensor:
    return model.classifier(features)
