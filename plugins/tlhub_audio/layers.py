"""A wav2vec2-family classifier's blocks, and its head split off: what the head reads, and the head alone.

``*ForSequenceClassification`` of wav2vec2, HuBERT and WavLM projects every frame (``projector``), averages
the projected frames over the real (non-padding) ones, and classifies the mean (``classifier``). The
projector is affine and the masked mean a weighted average, so projecting the mean is projecting each
frame and averaging: the head reads the masked mean of the frames, which the frozen layers compute once
per clip, and the ``head`` strategy trains ``projector`` and ``classifier`` on the cached vectors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig

# torch loads where it is used: `tlhub plugins` imports this module.


def layers(config: PretrainedConfig) -> tuple[str | tuple[str, ...], ...]:
    """The feature encoder (the convolutions and the frame projection, one block), the positional
    convolution, then each transformer layer; the encoder's LayerNorm goes with the positional
    convolution in the base variant (it normalises the layers' input) and with the top layer in the
    stable-layer-norm variant (it normalises their output), as do the weights of the weighted layer sum."""
    base = config.model_type  # the base model's attribute (base_model_prefix) in all three families
    first = [f"{base}.feature_extractor", f"{base}.feature_projection"]
    if config.mask_time_prob > 0 or config.mask_feature_prob > 0:
        first.append(f"{base}.masked_spec_embed")  # what the family's __init__ builds when its config masks
    top = config.num_hidden_layers - 1
    position, last = [f"{base}.encoder.pos_conv_embed"], [f"{base}.encoder.layers.{top}"]
    if config.do_stable_layer_norm:
        last.append(f"{base}.encoder.layer_norm")
    else:
        position.append(f"{base}.encoder.layer_norm")
    if config.use_weighted_layer_sum:
        last.append("layer_weights")
    return (tuple(first), tuple(position), *(f"{base}.encoder.layers.{i}" for i in range(top)), tuple(last))


def features(model: Any, batch: dict[str, Any]) -> torch.Tensor:
    """The mean of the frames the projector reads (the last hidden state, or the weighted sum of every
    layer's with ``use_weighted_layer_sum``) over the non-padding frames, as the model's forward pools."""
    import torch

    base = getattr(model, model.base_model_prefix)
    mask = batch.get("attention_mask")
    weighted = model.config.use_weighted_layer_sum
    outputs = base(batch["input_values"], attention_mask=mask, output_hidden_states=weighted)
    if weighted:
        stacked = torch.stack(outputs.hidden_states, dim=1)
        weights = torch.nn.functional.softmax(model.layer_weights, dim=-1)
        frames = (stacked * weights.view(-1, 1, 1)).sum(dim=1)
    else:
        frames = outputs.last_hidden_state
    if mask is None:
        return frames.mean(dim=1)
    real = model._get_feature_vector_attention_mask(frames.shape[1], mask)
    return frames.masked_fill(~real.unsqueeze(-1), 0.0).sum(dim=1) / real.sum(dim=1).view(-1, 1)


def head_logits(model: Any, features: torch.Tensor) -> torch.Tensor:
    return model.classifier(model.projector(features))
