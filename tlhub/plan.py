"""The plan: everything ``tlhub validate`` checks, decided once; :func:`tlhub.run` consumes it.

:func:`make_plan` reads and validates the recipe, resolves the plugin, the checkpoint's config and
preprocessing, lets the plugin check what only it knows (``check_plan``), checks input types and the
strategy on a model built on the meta device, then loads, splits and checks the data. No weights load
and nothing is written; every problem is a ``TlhubError`` naming the recipe key or file. The run never
re-decides anything the plan holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlhub import plugins
from tlhub.checkpoint import check_config, config_from_dict, read_checkpoint_config
from tlhub.errors import CheckpointError, PluginError, RecipeError
from tlhub.modality import Modality, check_input_types
from tlhub.recipe import Recipe, format_errors, load_recipe, validate_recipe
from tlhub.rundir import check_location
from tlhub.tuning import check_strategy

if TYPE_CHECKING:
    from transformers import PretrainedConfig

    from tlhub.data import Splits
    from tlhub.sources import Source

# load_dataset arguments that a recipe sets through its own keys, or that tlhub decides.
_RESERVED_LOAD_OPTIONS = ("path", "name", "data_files", "split", "streaming", "trust_remote_code")


@dataclass(frozen=True)
class Plan:
    """What validation established about a recipe; the run builds and trains from it alone."""

    recipe: Recipe
    source: str  # the recipe file, for messages
    modality: Modality
    options: Any  # the plugin's validated model.options (None when it takes none)
    checkpoint: str | None  # resolved location, None when training from scratch
    checkpoint_origin: str | None  # where that location came from (local folder, HF cache, a package)
    config: PretrainedConfig  # with the new label map
    processor: Any
    splits: Splits  # loaded, split, and checked by the plugin
    adaptations: list[str]  # what the plugin's preprocessing changes, for the model card
    output_dir: Path
    head_on_features: bool = False  # `head` trains on cached features (tlhub.feature_cache)


def _validated(
    recipe: Recipe | str | Path, overrides: dict[str, Any] | list[str] | None, registry: plugins.Registry
) -> tuple[Recipe, str]:
    # Names a broken or clashing plugin stands behind pass here: resolve_modality says what is wrong with them.
    # With a broken plugin installed, any name may be one it would have registered: resolve_modality says so.
    known: set[str] | None = set(registry.modalities) | {name for _, name in registry.taken_twice}
    if registry.errors:
        known = None
    if isinstance(recipe, Recipe):
        if overrides:
            raise RecipeError(["overrides apply to a recipe file; set the fields of a Recipe object directly"])
        return validate_recipe(recipe.model_dump(), "recipe", plugins=known), "recipe"
    return load_recipe(recipe, overrides, plugins=known), str(recipe)


def plugin_options(modality: Modality, recipe: Recipe) -> tuple[Any, list[str]]:
    from pydantic import ValidationError

    given = recipe.model.options
    if modality.options is None:
        if given:
            return None, [f"model.options: plugin '{modality.name}' takes no options (got {given})"]
        return None, []
    try:
        return modality.options.model_validate(given, strict=True), []
    except ValidationError as exc:
        return None, format_errors(exc, modality.options, prefix="model.options.")


def _source_problems(recipe: Recipe, sources: dict[str, Source]) -> list[str]:
    """Keys of ``data`` that the chosen source would ignore, or that clash with tlhub's own arguments."""
    data = recipe.data
    source = sources.get(data.source)
    if source is None:  # datasets.load_dataset reads them all
        clash = sorted(set(data.load_options) & set(_RESERVED_LOAD_OPTIONS))
        return [
            f"data.load_options.{key}: set by tlhub (or by the data key of that name), not through load_options"
            for key in clash
        ]
    problems = [
        f"data.{key}: source '{source.name}' does not read it (it reads: {', '.join(source.reads) or 'nothing more'})"
        for key in ("name", "data_files", "load_options")
        if getattr(data, key) and key not in source.reads
    ]
    if source.options is not None and "load_options" in source.reads:
        from pydantic import ValidationError

        try:
            source.options.model_validate(data.load_options, strict=True)
        except ValidationError as exc:
            problems += format_errors(exc, source.options, prefix="data.load_options.")
    return problems


def _precision_problems(recipe: Recipe) -> list[str]:
    import torch

    if recipe.train.mixed_precision == "fp16" and not torch.accelerator.is_available():
        return [
            "train.mixed_precision: fp16 needs a GPU and this machine has none; use bf16 (fast on recent CPUs) or no"
        ]
    return []


# What to install for each tracker Accelerate finds missing (aim: Accelerate supports aim 3 only).
_TRACKER_PACKAGES = {"aim": "'aim<4'", "comet_ml": "comet-ml"}


def _tracker_problems(recipe: Recipe) -> list[str]:
    """Trackers in train.report_to whose package Accelerate does not find installed."""
    if not recipe.train.report_to:
        return []
    from accelerate.tracking import get_available_trackers

    from tlhub.plugins import trackers

    available = {str(tracker) for tracker in get_available_trackers()} | set(trackers())
    return [
        f"train.report_to: '{name}' is not installed; pip install {_TRACKER_PACKAGES.get(name, name)}, "
        "or remove it from train.report_to"
        for name in recipe.train.report_to
        if name not in available
    ]


def _model_start(recipe: Recipe) -> tuple[str | None, str | None, PretrainedConfig]:
    if recipe.model.checkpoint is not None:
        resolved, config = read_checkpoint_config(recipe.model.checkpoint, recipe.model.trust_remote_code)
        return resolved.location, resolved.origin, config
    return None, None, config_from_dict(recipe.model.config or {})


def _processor(
    modality: Modality, checkpoint: str | None, config: PretrainedConfig, options: Any, trust_remote_code: bool = False
) -> Any:
    """The checkpoint's own preprocessing (or a new one for a model from scratch), loaded now: it is small,
    and a missing or broken file must stop ``validate``, not the run. Code shipped with the checkpoint runs
    only with ``trust_remote_code`` (the recipe's ``model.trust_remote_code``)."""
    from tlhub.checkpoint import remote_code_error

    if checkpoint is None:
        return modality.call("new_processor", config=config, options=options)
    try:
        return modality.call(
            "load_processor",
            checkpoint=checkpoint,
            config=config,
            options=options,
            trust_remote_code=trust_remote_code,
        )
    # what transformers raises for a missing file, or one whose JSON is not the mapping it expects
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        if not trust_remote_code and isinstance(exc, ValueError) and "trust_remote_code" in str(exc):
            raise remote_code_error(checkpoint, checkpoint, "preprocessing") from None
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"model.checkpoint: the preprocessing of '{checkpoint}' does not load ({type(exc).__name__}: {detail}); "
            f"a checkpoint folder needs the files its plugin '{modality.name}' reads (e.g. preprocessor_config.json, "
            "tokenizer files)"
        ) from None


def _check_encoder(
    modality: Modality, processor: Any, config: PretrainedConfig, options: Any, recipe: Recipe, split: Any
) -> None:
    """Encode two examples as evaluation does, and check that the batch is what the model takes: tensors of
    one batch size, the model's main input among them (transformers 5 forwards take ``**kwargs``, so a
    misnamed input would pass silently until the model missed it). A plugin whose encoder does not fit its
    model stops here, with what is wrong, not at the first training step."""
    import torch

    collate = modality.collate(processor, config, options, recipe.data.input_columns)
    batch = collate([split[i] for i in range(min(2, len(split)))])
    where = f"plugin '{modality.name}': make_encoder's batch"
    wrong = sorted(k for k, v in batch.items() if not isinstance(v, torch.Tensor))
    if wrong:
        raise PluginError(f"{where} holds {', '.join(wrong)} that are not tensors (return_tensors='pt')")
    sizes = {k: v.shape[0] if v.dim() else None for k, v in batch.items()}
    if len(set(sizes.values())) > 1:
        raise PluginError(f"{where} has tensors of different batch sizes: {sizes}")
    model_class = modality.model_class
    concrete = getattr(model_class, "_model_mapping", {}).get(type(config), model_class)
    if not hasattr(concrete, "forward"):  # code shipped with a checkpoint, known only once it loads
        return
    main = getattr(concrete, "main_input_name", None)
    if main and main not in batch:
        raise PluginError(
            f"{where} lacks {main}, the input {concrete.__name__} reads (the batch holds {', '.join(sorted(batch))})"
        )


def _skeleton_problems(modality: Modality, config: PretrainedConfig, recipe: Recipe) -> list[str]:
    """Build the model on the meta device (no memory) and check the strategy's options against it."""
    import torch

    where = "model.checkpoint" if recipe.model.checkpoint else "model.config"
    try:
        with torch.device("meta"):
            skeleton = modality.from_config(config, trust_remote_code=recipe.model.trust_remote_code)
    except (ValueError, TypeError, RuntimeError, AttributeError, IndexError, ZeroDivisionError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [f"{where}: a {config.model_type} model cannot be built from this config ({detail})"]
    return check_strategy(recipe.tuning.strategy, skeleton, recipe.tuning.options(), modality)


def make_plan(recipe: Recipe | str | Path, overrides: dict[str, Any] | list[str] | None = None) -> Plan:
    """Check everything that can be known before training; raise a ``TlhubError`` at the first stage that fails.

    Within a stage every problem is reported at once. Loads no weights and writes nothing.
    """
    from tlhub import feature_cache
    from tlhub.data import peek_features

    registry = plugins.registry()
    recipe, source = _validated(recipe, overrides, registry)
    modality = plugins.resolve_modality(recipe.model.plugin, registry)
    if (problem := plugins.source_problem(recipe.data.source, registry)) is not None:
        raise problem

    options, problems = plugin_options(modality, recipe)
    columns = recipe.data.input_columns
    if len(columns) > modality.max_input_columns:
        problems.append(
            f"data.input_column: plugin '{modality.name}' reads {modality.max_input_columns} input column(s), "
            f"got {len(columns)} ({', '.join(columns)})"
        )
    problems += _source_problems(recipe, registry.sources)
    problems += _precision_problems(recipe)
    problems += _tracker_problems(recipe)
    problems += check_location(
        recipe.output_dir, recipe_file=None if source == "recipe" else source, checkpoint=recipe.model.checkpoint
    )
    if problems:
        raise RecipeError(problems, source=source)

    checkpoint, origin, config = _model_start(recipe)
    problems = check_config(config, "model.checkpoint" if checkpoint else "model.config")
    if problems:
        raise RecipeError(problems, source=source)
    features = peek_features(recipe.data, registry.sources)
    for column in columns:
        check_input_types(
            modality,
            recipe.model.checkpoint or "model.config",
            config,
            column,
            features[column],
            registry.modalities,
            registry.input_types,
        )
    processor = _processor(modality, checkpoint, config, options, recipe.model.trust_remote_code)
    if not callable(getattr(processor, "save_pretrained", None)):  # found now, not after the training
        raise PluginError(
            f"plugin '{modality.name}': its processor ({type(processor).__name__}) has no save_pretrained; tlhub "
            "saves it beside the model and load_processor reads it back (a transformers processor, or a "
            "FeatureExtractionMixin subclass: docs/plugins.md)"
        )
    if modality.check_plan is not None:
        found = modality.call("check_plan", config=config, checkpoint=checkpoint, processor=processor, options=options)
        problems = list(found or [])
    problems += _skeleton_problems(modality, config, recipe)
    if problems:
        raise RecipeError(problems, source=source)

    splits, adaptations = _checked_splits(recipe, modality, registry.sources, config, processor, options)
    _check_encoder(modality, processor, config, options, recipe, splits.validation)
    _label_config(config, splits.labels)
    if modality.adapt_config is not None:
        modality.call("adapt_config", config=config, options=options)
    return Plan(
        recipe=recipe,
        source=source,
        modality=modality,
        options=options,
        checkpoint=checkpoint,
        checkpoint_origin=origin,
        config=config,
        processor=processor,
        splits=splits,
        adaptations=adaptations,
        output_dir=Path(recipe.output_dir),
        head_on_features=feature_cache.unusable(recipe, modality, options) is None,
    )


def _checked_splits(
    recipe: Recipe,
    modality: Modality,
    sources: dict[str, Source],
    config: PretrainedConfig,
    processor: Any,
    options: Any,
) -> tuple[Splits, list[str]]:
    """Load and split the data, and let the plugin check (and, by its options, clean) each split.

    Under several processes the main process goes first, so that caches are built once.
    """
    import torch
    from accelerate import PartialState

    from tlhub.data import INDEX_COLUMN, describe_inputs, load_splits, numbered, size_notes
    from tlhub.errors import DataError

    with PartialState(cpu=not torch.accelerator.is_available()).main_process_first():
        splits = load_splits(recipe.data, sources)
        roles_of: dict[str, list[str]] = {}  # the same adaptation in several splits is said once
        for role, split in splits.items():
            if role == "test":  # the report of the test split names each example by its file or text
                names = describe_inputs(split, recipe.data.input_columns)
                described = dict(zip(split[INDEX_COLUMN], names, strict=True))
            checked, notes = modality.call(
                "check_data",
                split=split,
                columns=recipe.data.input_columns,
                config=config,
                processor=processor,
                options=options,
            )
            if len(checked) == 0:
                raise DataError(f"data.splits.{role}: no {role} examples are left after the plugin's checks")
            if role == "test":
                # a plugin's checks that dropped the numbers leave the examples unnamed
                kept = checked[INDEX_COLUMN] if INDEX_COLUMN in checked.column_names else []
                splits.test_inputs = [described[i] for i in kept] or [f"#{i}" for i in range(len(checked))]
            setattr(splits, role, numbered(checked))
            for note in notes:
                roles_of.setdefault(note, []).append(role)
    splits.notes += size_notes(splits, recipe)
    return splits, [f"{', '.join(roles)}: {note}" for note, roles in roles_of.items()]


def _label_config(config: PretrainedConfig, labels: list[str]) -> None:
    """The new head's label map, in the config the model is built from."""
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {name: i for i, name in enumerate(labels)}
