"""Head-only training on cached features: the frozen layers run once per example, not once per epoch.

Under ``head`` with no random augmentation, what the frozen layers compute for an example never
changes (they run in eval mode, :func:`tlhub.engine.frozen_in_eval`), so the plugin's ``features``
computes it once per example, ``datasets`` caches it on disk (an Arrow file keyed by the base checkpoint,
the split's fingerprint and the preprocessing), and the head (the plugin's ``head_logits``) trains on the
cached vectors. The trained head is then put back in the whole model, which scores the validation and
test splits and is saved as usual.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets
    import torch
    from accelerate import Accelerator

    from tlhub.modality import Modality
    from tlhub.plan import Plan
    from tlhub.recipe import Recipe

FEATURES = "features"  # the cached vectors' column
_VERSION = "1"  # bump when what is cached changes meaning


def unusable(recipe: Recipe, modality: Modality, options: Any) -> str | None:
    """Why the recipe's head cannot train on cached features; ``None`` when it can (and will)."""
    if recipe.tuning.strategy != "head":
        return f"the strategy is {recipe.tuning.strategy}, not head"
    if not recipe.tuning.head.cache_features:
        return "tuning.head.cache_features is off"
    if modality.features is None or modality.head_logits is None:
        return f"plugin '{modality.name}' does not split its model at the head (Modality.features, head_logits)"
    if modality.augmenting(options):
        return "training batches are randomly augmented (model.options.augment), so features change every epoch"
    if recipe.model.checkpoint is None or recipe.model.init != "pretrained":
        return "the frozen layers are random values (no pretrained checkpoint)"
    return None


def cache_key(plan: Plan, split: datasets.Dataset, base: str | None) -> str:
    """What the cached features depend on: the base's weights and config, the split's rows (its ``datasets``
    fingerprint), the preprocessing (processor, plugin options, input columns) and the numerics (precision,
    library versions). ``base`` is the checkpoint's fingerprint as the run recorded it (its weights are
    hashed once per run)."""
    from importlib.metadata import version

    r = plan.recipe
    processor = plan.processor
    described = processor.to_json_string() if hasattr(processor, "to_json_string") else repr(processor)
    parts = {
        "version": _VERSION,
        "checkpoint": base or r.model.checkpoint,
        "config": plan.config.to_json_string(use_diff=False),
        "split": split._fingerprint,
        "processor": described,
        "options": plan.options.model_dump_json() if plan.options is not None else None,
        "columns": r.data.input_columns,
        "plugin": plan.modality.name,
        "precision": r.train.mixed_precision,
        "libraries": [version(n) for n in ("torch", "transformers", "datasets")],
    }
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()


def cache_folder() -> Path:
    """Where the features are cached: beside the ``datasets`` cache (``HF_DATASETS_CACHE``/../tlhub/features)."""
    import datasets

    return Path(datasets.config.HF_DATASETS_CACHE).parent / "tlhub" / "features"


def cached_features(
    plan: Plan,
    model: torch.nn.Module,
    split: datasets.Dataset,
    collate: Any,
    accelerator: Accelerator,
    batch_size: int,
    keep: list[str],
    base: str | None,
) -> datasets.Dataset:
    """``split`` with its input columns replaced by ``features`` (one float32 vector per example), computed
    by the plugin's ``features`` under the run's precision, or read from the cache. ``keep``: the other
    columns to keep (the label, the example numbers); ``base``: the checkpoint's fingerprint (:func:`cache_key`).
    The main process computes; the others read its file."""
    import torch

    key = cache_key(plan, split, base)
    path = cache_folder() / f"{key}.arrow"
    model.eval()

    def compute(rows: dict[str, list[Any]]) -> dict[str, Any]:
        examples = [dict(zip(rows, values, strict=True)) for values in zip(*rows.values(), strict=True)]
        batch = {k: v.to(accelerator.device) for k, v in collate(examples).items() if k != "labels"}
        with torch.no_grad(), accelerator.autocast():
            vectors = plan.modality.call("features", model=model, batch=batch)
        return {FEATURES: vectors.float().cpu().numpy()}

    with accelerator.main_process_first():
        path.parent.mkdir(parents=True, exist_ok=True)
        found = split.map(
            compute,
            batched=True,
            batch_size=batch_size,
            remove_columns=[c for c in split.column_names if c not in keep],
            cache_file_name=str(path),
            new_fingerprint=key,
            load_from_cache_file=True,
            desc="features",
        )
    return found.with_format("numpy", columns=[FEATURES], output_all_columns=True)


def collate_features(label: str) -> Any:
    """``examples -> batch`` of cached features: the vectors stacked, the class ids as ``labels``."""
    import numpy as np
    import torch

    def collate(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {
            FEATURES: torch.from_numpy(np.stack([np.asarray(e[FEATURES], dtype=np.float32) for e in examples])),
            "labels": torch.tensor([e[label] for e in examples]),
        }

    return collate


def head_on_features(model: torch.nn.Module, modality: Modality) -> torch.nn.Module:
    """A module that runs only ``model``'s head, on cached features (``forward(features, labels)``), returning
    the loss and logits as the whole model would. Its parameters are ``model``'s (under ``model.``)."""
    import torch
    from transformers.modeling_outputs import SequenceClassifierOutput

    class HeadOnFeatures(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
            logits = modality.call("head_logits", model=self.model, features=features)
            loss = None if labels is None else torch.nn.functional.cross_entropy(logits.float(), labels)
            return SequenceClassifierOutput(loss=loss, logits=logits)

    return HeadOnFeatures()
