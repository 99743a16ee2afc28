"""Finding a checkpoint and reading its config, without loading any weights."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlhub.errors import CheckpointError

if TYPE_CHECKING:
    from transformers import PretrainedConfig

# Any of these files means "a folder that holds weights" (single file, sharded index, or legacy .bin).
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def _looks_local(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or ref.count("/") != 1 or Path(ref).exists()


def read_checkpoint_config(ref: str) -> tuple[str, PretrainedConfig]:
    """Resolve ``model.checkpoint`` to ``(location, config)``.

    A local folder must hold ``config.json`` and weights; anything else that looks like ``org/name`` is
    looked up on the Hub (or its local cache) by transformers.
    """
    from transformers import AutoConfig

    if _looks_local(ref):
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
        location = str(path.resolve())
    else:
        location = ref
    try:
        config = AutoConfig.from_pretrained(location)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"model.checkpoint: cannot read the config of '{ref}' (not a local folder, and not found on the "
            f"Hub or in its cache): {first_line}"
        ) from None
    return location, config


def config_from_dict(values: dict[str, Any]) -> PretrainedConfig:
    """Build a config for a model trained from scratch (``model.config`` in a recipe)."""
    from transformers import AutoConfig

    values = dict(values)
    model_type = values.pop("model_type")
    try:
        return AutoConfig.for_model(model_type, **values)
    except ValueError as exc:
        raise CheckpointError(f"model.config.model_type: {exc}") from None
