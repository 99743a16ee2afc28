"""A BERT-family classifier's blocks, and its head split off: what the head reads, and the head alone.

Every family's head reads the first token of the last encoder layer's output. With ``pooling: mean`` that
last layer is tlhub's mean-pooling layer: it belongs to the head (saved with it) but never trains, so it
computes the features with the pretrained layers; the trainable head modules (BERT's pooler, RoBERTa's
classification head, DistilBERT's pre-classifier and classifier) start from that vector.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig

# torch loads where it is used: `tlhub plugins` imports this module. FAMILIES is imported inside the
# functions too: the package's __init__ imports this module before it defines them.


def layers(config: PretrainedConfig) -> tuple[str, ...]:
    """The embeddings, then each encoder layer but the mean-pooling layer (the head's, fixed)."""
    from tlhub_text import _POOLING_LAYER, FAMILIES

    family = FAMILIES[config.model_type]
    pooling = getattr(config, _POOLING_LAYER, None)
    encoder = tuple(f"{family.layers}.{i}" for i in range(config.num_hidden_layers) if i != pooling)
    return (family.embeddings, *encoder)


def features(model: Any, batch: dict[str, Any]) -> torch.Tensor:
    """The first token of the last encoder layer's output (with mean pooling: the fixed pooling layer's)."""
    base = getattr(model, model.base_model_prefix)
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    # BERT's base model also runs its pooler (a head module) on the same vector; its output is not used.
    return base(**inputs).last_hidden_state[:, 0, :]


def head_logits(model: Any, features: torch.Tensor) -> torch.Tensor:
    """The family's head on the first token's vector, step for step as its ``forward`` runs it."""
    import torch

    from tlhub_text import FAMILIES

    kind = FAMILIES[model.config.model_type].head_kind
    if kind == "pooler":  # BertForSequenceClassification: pooler (dense, tanh on token 0), dropout, classifier
        pooled = getattr(model, model.base_model_prefix).pooler(features.unsqueeze(1))
        return model.classifier(model.dropout(pooled))
    if kind == "classification_head":  # RobertaClassificationHead reads token 0 of the sequence itself
        return model.classifier(features.unsqueeze(1))
    # DistilBertForSequenceClassification: pre_classifier, ReLU, dropout, classifier
    hidden = torch.nn.functional.relu(model.pre_classifier(features))
    return model.classifier(model.dropout(hidden))
