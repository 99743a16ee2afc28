"""Building the model: the pretrained layers copied, a new head of ``num_labels`` outputs in place of the old.

The head surgery is made visible: which pretrained head tensors were dropped and what replaced them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from tlhub.tuning.parameters import is_under

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

    from tlhub.modality import Modality


def _shape(shape: tuple[int, ...] | torch.Size) -> str:
    return "x".join(str(d) for d in shape)


@dataclass
class HeadSurgery:
    """What happened to the output layer, one line per head tensor."""

    lines: list[str] = field(default_factory=list)


def build_model(
    modality: Modality, checkpoint: str | None, config: PretrainedConfig, options: object = None
) -> tuple[PreTrainedModel, HeadSurgery]:
    """Load ``checkpoint`` (or build ``config`` untrained) with a new head for the config's labels.

    ``options`` are the plugin's ``model.options``, for its ``extend_model``.
    """
    surgery = HeadSurgery()
    if checkpoint is None:
        model = modality.model_class.from_config(config)
        surgery.lines.append("no pretrained checkpoint: every layer starts from random values")
    else:
        model = _load_with_new_head(modality, checkpoint, config, surgery)
    if modality.extend_model is not None:
        surgery.lines += modality.call("extend_model", model=model, options=options)
    return model, surgery


def _load_with_new_head(
    modality: Modality, checkpoint: str, config: PretrainedConfig, surgery: HeadSurgery
) -> PreTrainedModel:
    model, info = modality.model_class.from_pretrained(
        checkpoint, config=config, ignore_mismatched_sizes=True, output_loading_info=True, dtype=torch.float32
    )
    mismatched = {key: tuple(old) for key, old, _new in info["mismatched_keys"]}
    head = modality.head(config)
    for name, param in model.named_parameters():
        if not is_under(name, head):
            continue
        new = _shape(param.shape)
        if name in info["missing_keys"]:
            surgery.lines.append(f"{name}: new {new} (the checkpoint has no such tensor)")
        else:
            old = _shape(mismatched.get(name, tuple(param.shape)))
            surgery.lines.append(f"{name}: pretrained {old} dropped, new {new}")
    # Always a new head, even when the shapes happen to match (10 pretraining classes, 10 new ones):
    # the old head maps features to the old classes, which mean nothing for the new task.
    for module_name in head:
        model.get_submodule(module_name).apply(model._init_weights)
    return model  # type: ignore[no-any-return]
