"""Building the model: the pretrained layers copied, a new head of ``num_labels`` outputs in place of the old.

The head surgery is made visible: which pretrained head tensors were dropped and what replaced them.
Outside the head, nothing is lost silently: a tensor the checkpoint lacks, has in another size, or has
under a layer the model does not have means the weights belong to another architecture, and the run stops
(``model.allow_partial_load`` lets it go on, with a warning in the surgery record and the model card).
Modules of another task that the classifier has no place for (a BERT pretraining head, a wav2vec2
quantizer, a ViT pooler) are dropped and recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from tlhub.errors import CheckpointError
from tlhub.tuning.parameters import is_under

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

    from tlhub.modality import Modality

# How many misfit tensors a message names; the count says how many there are.
_EXAMPLES = 3


def _shape(shape: tuple[int, ...] | torch.Size) -> str:
    return "x".join(str(d) for d in shape)


@dataclass
class HeadSurgery:
    """What happened to the output layer, one line per head tensor (and what else loading changed)."""

    lines: list[str] = field(default_factory=list)


def attention_for(choice: str) -> str | None:
    """The attention implementation to build with for ``model.attention``: ``None`` (transformers' default, SDPA
    where the family has it) for ``auto``, else the recipe's choice. ``benchmarks/step_levers.py`` found neither
    eager nor SDPA consistently faster for a training step on this project's CPU (eager / SDPA 0.93-1.04 from run
    to run, every shipped family at its base's size and ViT-B/16: docs/benchmarks.md); on GPUs SDPA is faster."""
    return None if choice == "auto" else choice


def build_model(
    modality: Modality,
    checkpoint: str | None,
    config: PretrainedConfig,
    options: object = None,
    *,
    trust_remote_code: bool = False,
    allow_partial_load: bool = False,
    init: str = "pretrained",
    attention: str | None = None,
) -> tuple[PreTrainedModel, HeadSurgery]:
    """Load ``checkpoint`` (or build ``config`` untrained) with a new head for the config's labels.

    ``options`` are the plugin's ``model.options``, for its ``extend_model``. ``trust_remote_code`` and
    ``allow_partial_load`` are the recipe's ``model.`` keys of those names: off, code shipped with the
    checkpoint never runs, and weights that do not fit the config outside the head are a ``CheckpointError``.
    ``init`` is ``model.init``: ``random`` builds the checkpoint's architecture without its values.
    ``attention`` is the attention implementation (:func:`attention_for`); ``None``: transformers' default.
    """
    surgery = HeadSurgery()
    extra = {"attn_implementation": attention} if attention else {}
    if checkpoint is None:
        model = modality.from_config(config, trust_remote_code=trust_remote_code, **extra)
        surgery.lines.append("no pretrained checkpoint: every layer starts from random values")
    elif init == "random":
        model = modality.from_config(config, trust_remote_code=trust_remote_code, **extra)
        surgery.lines.append(
            f"model.init random: the architecture and preprocessing of '{checkpoint}', every layer from random "
            "values (a from-scratch control)"
        )
    else:
        model = _load_with_new_head(modality, checkpoint, config, surgery, trust_remote_code, allow_partial_load, extra)
    if modality.extend_model is not None:
        surgery.lines += modality.call("extend_model", model=model, options=options)
    return model, surgery


def _from_pretrained(
    modality: Modality, checkpoint: str, config: PretrainedConfig, trust_remote_code: bool, extra: dict[str, Any]
) -> tuple[PreTrainedModel, dict[str, Any]]:
    """The model and transformers' loading info; what the weights' loading raises, as one line."""
    from safetensors import SafetensorError

    from tlhub.checkpoint import remote_code_error

    try:
        return modality.model_class.from_pretrained(  # type: ignore[no-any-return]
            checkpoint,
            config=config,
            ignore_mismatched_sizes=True,  # the head's sizes differ by design; the rest is checked below
            output_loading_info=True,
            dtype=torch.float32,
            use_safetensors=True,  # never unpickle: the plan refused pickle-only folders, this covers the Hub
            trust_remote_code=trust_remote_code,
            **extra,
        )
    except ValueError as exc:
        if not trust_remote_code and "trust_remote_code" in str(exc):
            raise remote_code_error(checkpoint, checkpoint, "model") from None
        raise _unreadable(checkpoint, exc) from None
    except (OSError, RuntimeError, SafetensorError) as exc:
        raise _unreadable(checkpoint, exc) from None


def _unreadable(checkpoint: str, exc: Exception) -> CheckpointError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CheckpointError(
        f"model.checkpoint: the weights of '{checkpoint}' do not load ({type(exc).__name__}: {detail}); "
        "the files are unreadable or not this model's: check them, or download or save them again"
    )


def _load_with_new_head(
    modality: Modality,
    checkpoint: str,
    config: PretrainedConfig,
    surgery: HeadSurgery,
    trust_remote_code: bool,
    allow_partial_load: bool,
    extra: dict[str, Any],
) -> PreTrainedModel:
    model, info = _from_pretrained(modality, checkpoint, config, trust_remote_code, extra)
    head = modality.head(config)
    misfits, dropped = _outside_head(model, info, head)
    if misfits:
        examples = "; ".join(misfits[:_EXAMPLES]) + ("; ..." if len(misfits) > _EXAMPLES else "")
        if not allow_partial_load:
            raise CheckpointError(
                f"model.checkpoint: {len(misfits)} tensors of '{checkpoint}' do not fit its config outside the head "
                f"(e.g. {examples}); the weights belong to another architecture or size (found as they loaded; "
                "model.allow_partial_load: true starts such tensors from random values instead)"
            )
        surgery.lines.append(
            f"warning (model.allow_partial_load): {len(misfits)} tensors of '{checkpoint}' outside the head do not "
            f"fit its config (e.g. {examples}); those the checkpoint lacks or holds in another size start from "
            "random values, extra ones are dropped"
        )
    for module, count in dropped.items():
        surgery.lines.append(
            f"{module}: a pretrained module the classifier has no place for, dropped ({count} tensors)"
        )

    mismatched = {key: tuple(old) for key, old, _new in info["mismatched_keys"]}
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
    return model


def _outside_head(
    model: PreTrainedModel, info: dict[str, Any], head: tuple[str, ...]
) -> tuple[list[str], dict[str, int]]:
    """What of transformers' loading info concerns tensors outside the head: one line per misfit (missing,
    another size, or extra within the model's own layers), in the model's order, and the modules of another
    task that the model has no place for, with their tensor counts.

    transformers has already renamed legacy keys (``gamma`` -> ``weight``) and left out buffers that are
    not saved (position ids), so what remains is real. Its unexpected keys may lack the base model's prefix
    (a ``ViTModel`` checkpoint's ``pooler.dense.weight``).
    """
    order = {name: i for i, name in enumerate(model.state_dict())}
    mismatched = [
        (key, f"{key}: checkpoint {_shape(old)}, model {_shape(new)}")
        for key, old, new in info["mismatched_keys"]
        if not is_under(key, head)
    ]
    missing = [(key, f"{key}: not in the checkpoint") for key in info["missing_keys"] if not is_under(key, head)]
    misfits = [line for _, line in sorted(mismatched + missing, key=lambda item: order.get(item[0], len(order)))]
    modules = {name for name, _ in model.named_modules()}
    dropped: dict[str, int] = {}
    for key in sorted(info["unexpected_keys"]):
        found = _place(key, modules, model.base_model_prefix, head)
        if found is None:
            continue  # a tensor of the old head
        place, absent_module = found
        if absent_module:
            dropped[place] = dropped.get(place, 0) + 1
        else:
            misfits.append(f"{key}: not in the model")
    return misfits, dropped


def _place(key: str, modules: set[str], prefix: str, head: tuple[str, ...]) -> tuple[str, bool] | None:
    """Where an unexpected checkpoint tensor would sit in the model: ``None`` under the head; else the first
    module of its path the model lacks, and whether that is a whole named module (another task's: dropped)
    rather than an extra layer index or an extra tensor of a module the model has (a misfit)."""
    candidates = [key] if not prefix or key.startswith(prefix + ".") else [key, f"{prefix}.{key}"]
    placed = []
    for candidate in candidates:
        if is_under(candidate, head):
            return None
        parts = candidate.split(".")
        placed.append((max(i for i in range(len(parts)) if i == 0 or ".".join(parts[:i]) in modules), parts))
    depth, parts = max(placed, key=lambda found: found[0])
    absent = parts[depth]
    whole_module = depth < len(parts) - 1 and not absent.isdigit()
    shown = parts[1 : depth + 1] if parts[0] == prefix and not key.startswith(prefix + ".") else parts[: depth + 1]
    return ".".join(shown), whole_module  # named as the checkpoint names it
