"""One recipe, start to finish: plan (cheap checks), then load, train, evaluate and save.

:func:`plan_run` is everything ``tlhub validate`` does: the recipe, the plugin, the checkpoint's config,
the data's schema and the input-type check, with no weights or data loaded in bulk.
:func:`run` then builds and trains.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import ValidationError

from tlhub import plugins
from tlhub.checkpoint import config_from_dict, read_checkpoint_config
from tlhub.data import Splits, load_splits, peek_features
from tlhub.errors import DataError, RecipeError
from tlhub.modality import Modality, check_input_types
from tlhub.recipe import Recipe, dump_recipe, format_errors, load_recipe, validate_recipe
from tlhub.tuning import apply_strategy, check_strategy, count_parameters

if TYPE_CHECKING:
    import datasets
    from transformers import PretrainedConfig


@dataclass
class Plan:
    """What validation established about a recipe, before anything heavy loads."""

    recipe: Recipe
    source: str  # the recipe file, for messages
    modality: Modality
    checkpoint: str | None  # resolved location, None when training from scratch
    checkpoint_origin: str | None  # where that location came from (local folder, HF cache, a package)
    config: PretrainedConfig
    features: datasets.Features
    plugin_options: Any


@dataclass
class RunResult:
    """What :func:`run` returns: ``metrics[split][metric]`` and where the model was saved."""

    metrics: dict[str, dict[str, float]]
    output_dir: Path


def _problems(source: str, problems: list[str]) -> RecipeError:
    return RecipeError(problems, source=source)


def plan_run(recipe: Recipe | str | Path, overrides: dict[str, Any] | list[str] | None = None) -> Plan:
    """Validate everything that can be checked without loading weights or data in bulk."""
    known = set(plugins.modalities()) | set(plugins.failed_plugins)
    if isinstance(recipe, Recipe):
        source = "recipe"
        recipe = validate_recipe(recipe.model_dump(), source, plugins=known)
    else:
        source = str(recipe)
        recipe = load_recipe(recipe, overrides, plugins=known)

    modality = plugins.resolve_modality(recipe.model.plugin)
    plugin_options = None
    if modality.options is not None:
        try:
            plugin_options = modality.options.model_validate(recipe.model.options)
        except ValidationError as exc:
            raise _problems(source, [f"model.options.{p}" for p in format_errors(exc)]) from None
    elif recipe.model.options:
        raise _problems(
            source, [f"model.options: plugin '{modality.name}' takes no options (got {recipe.model.options})"]
        )

    columns = recipe.data.input_columns
    if len(columns) > modality.max_input_columns:
        raise _problems(
            source,
            [
                f"data.input_column: plugin '{modality.name}' reads {modality.max_input_columns} input column(s), "
                f"got {len(columns)} ({', '.join(columns)})"
            ],
        )
    checkpoint, origin = None, None
    if recipe.model.checkpoint is not None:
        resolved, config = read_checkpoint_config(recipe.model.checkpoint)
        checkpoint, origin = resolved.location, resolved.origin
    else:
        config = config_from_dict(recipe.model.config or {})
    features = peek_features(recipe.data, plugins.sources())
    for column in columns:
        check_input_types(
            modality, recipe.model.checkpoint or "model.config", config, column, features[column], plugins.modalities()
        )
    # Strategy options that depend on the architecture (LoRA targets, frozen modules): check them on
    # a model built on the meta device, which allocates no memory.
    with torch.device("meta"):
        skeleton = modality.auto_model.from_config(config)
    strategy = recipe.tuning.strategy
    if problems := check_strategy(strategy, skeleton, recipe.tuning.options(), modality):
        raise _problems(source, problems)
    return Plan(recipe, source, modality, checkpoint, origin, config, features, plugin_options)


def _make_collate(plan: Plan, processor: Any) -> Any:
    encode = plan.modality.make_encoder(processor, plan.config, plan.plugin_options)
    columns, label = plan.recipe.data.input_columns, plan.recipe.data.label_column

    def values(example: dict[str, Any]) -> Any:
        return example[columns[0]] if len(columns) == 1 else tuple(example[c] for c in columns)

    def collate(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = dict(encode([values(e) for e in examples]))
        batch["labels"] = torch.tensor([e[label] for e in examples])
        return batch

    return collate


def _checked_splits(plan: Plan, processor: Any) -> tuple[Splits, list[str]]:
    """Load the splits and let the plugin check (and, by its options, clean) each one."""
    splits = load_splits(plan.recipe.data, plugins.sources())
    roles_of: dict[str, list[str]] = {}  # the same adaptation in several splits is said once
    for role, split in splits.items():
        checked, notes = plan.modality.check_data(
            split, plan.recipe.data.input_columns, plan.config, processor, plan.plugin_options
        )
        if len(checked) == 0:
            raise DataError(f"data.splits.{role}: no {role} examples are left after the plugin's checks")
        setattr(splits, role, checked)
        for note in notes:
            roles_of.setdefault(note, []).append(role)
    return splits, [f"{', '.join(roles)}: {note}" for note, roles in roles_of.items()]


def _class_weights(labels: list[int], num_classes: int, weighting: str) -> torch.Tensor | None:
    """Loss weights per class ('balanced': n / (classes * count), scikit-learn's definition)."""
    if weighting == "none":
        return None
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(labels)
    weights = np.ones(num_classes)
    weights[present] = compute_class_weight("balanced", classes=present, y=np.asarray(labels))
    return torch.tensor(weights, dtype=torch.float32)


def _data_description(recipe: Recipe, splits: Splits) -> dict[str, Any]:
    files = f" ({recipe.data.data_files})" if recipe.data.data_files else ""
    return {
        "description": f"'{recipe.data.source}'{files}",
        "labels": splits.labels,
        "sizes": {role: len(split) for role, split in splits.items()},
    }


def run(
    recipe: Recipe | str | Path,
    overrides: dict[str, Any] | list[str] | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    command: str | None = None,
) -> RunResult:
    """Run a recipe (a file path or a :class:`Recipe`); return its metrics and output directory.

    ``overrides`` sets dotted keys (``{"train.epochs": 1}`` or ``["train.epochs=1"]``). Works the same
    under ``accelerate launch`` / ``torchrun`` with several processes.
    """
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.state import AcceleratorState
    from accelerate.utils import set_seed

    from tlhub.model import build_model
    from tlhub.outputs import (
        CardFacts,
        base_provenance,
        check_output_dir,
        finish_run_dir,
        save_model_folder,
        start_run_dir,
        write_model_card,
    )

    started = time.time()
    plan = plan_run(recipe, overrides)
    command = command or f"tlhub.run({plan.source!r}, overrides={overrides!r})"
    r, modality = plan.recipe, plan.modality
    out = Path(r.output_dir)
    resolved = r.model_dump(mode="json")
    decision = check_output_dir(out, resume, overwrite, resolved)

    # A second run in the same process may ask for another precision; Accelerate keeps one global
    # state, so clear its per-run part (the process group, if any, stays).
    AcceleratorState._reset_state()
    accelerator = Accelerator(
        # Accelerate only runs several CPU processes (torchrun, accelerate launch) when told it is on
        # the CPU; on a machine with no accelerator, that is where it is.
        cpu=not torch.accelerator.is_available(),
        mixed_precision=r.train.mixed_precision,
        gradient_accumulation_steps=r.train.gradient_accumulation_steps,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    set_seed(r.train.seed)

    processor = modality.load_processor(plan.checkpoint) if plan.checkpoint else modality.new_processor(plan.config)
    with accelerator.main_process_first():
        splits, adaptations = _checked_splits(plan, processor)
    model, surgery = build_model(modality, plan.checkpoint, plan.config, splits.labels, plan.plugin_options)
    tuned = apply_strategy(r.tuning.strategy, model, r.tuning.options(), modality)
    trainable, total = count_parameters(tuned)

    accelerator.print(f"tlhub: {plan.source} -> {out}  ({accelerator.num_processes} process(es), {accelerator.device})")
    accelerator.print(
        f"base: {r.model.checkpoint or 'none (from scratch)'} [{plan.config.model_type}, {modality.input_type}]"
        + (f" from {plan.checkpoint_origin}" if plan.checkpoint_origin else "")
    )
    accelerator.print("data: " + "; ".join(splits.notes))
    for line in surgery.lines + [f"adapted: {a}" for a in adaptations]:
        accelerator.print(line)
    accelerator.print(f"labels: {dict(enumerate(splits.labels))}")
    accelerator.print(
        f"strategy {r.tuning.strategy}: {trainable:,} trainable of {total:,} parameters, "
        f"learning rate {r.tuning.learning_rate(r.train.learning_rate):g}"
    )

    data_info = _data_description(r, splits)
    if accelerator.is_main_process:
        start_run_dir(
            out,
            decision,
            {
                "recipe_file": plan.source,
                "command": command,
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "recipe": resolved,
                "data": data_info,
                "versions": {"python": platform.python_version(), "torch": torch.__version__},
                "finished": False,
            },
        )
    accelerator.wait_for_everyone()

    from tlhub.engine import fit

    columns = [*r.data.input_columns, r.data.label_column]
    trained, state, evaluate = fit(
        accelerator,
        tuned,
        splits.train.select_columns(columns),
        splits.validation.select_columns(columns),
        _make_collate(plan, processor),
        r.train.model_copy(update={"learning_rate": r.tuning.learning_rate(r.train.learning_rate)}),
        r.eval,
        out,
        labels=splits.labels,
        class_weights=_class_weights(splits.train[r.data.label_column], len(splits.labels), r.train.class_weighting),
        resume=decision == "resume",
    )
    metrics = {
        "validation": evaluate(splits.validation.select_columns(columns)),
        "test": evaluate(splits.test.select_columns(columns)),
    }
    accelerator.print("test: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics["test"].items() if k != "examples"))

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_model_folder(out, accelerator.unwrap_model(trained), processor)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (out / "recipe.yaml").write_text(dump_recipe(r))
        write_model_card(
            out,
            CardFacts(
                recipe=r,
                command=command,
                base=r.model.checkpoint,
                base_origin=plan.checkpoint_origin,
                base_provenance=base_provenance(plan.checkpoint),
                model_type=plan.config.model_type,
                input_type=modality.input_type,
                pipeline_task=modality.pipeline_task,
                labels=splits.labels,
                data_notes=splits.notes,
                adaptations=adaptations,
                surgery=surgery.lines,
                trainable=trainable,
                total=total,
                best_epoch=state.best_epoch,
                metrics=metrics,
                history=state.history,
            ),
        )
        finish_run_dir(
            out,
            {
                "metrics": metrics,
                "best_epoch": state.best_epoch,
                "history": state.history,
                "trainable_parameters": trainable,
                "total_parameters": total,
                "wall_seconds": round(time.time() - started, 1),
            },
        )
    accelerator.wait_for_everyone()
    accelerator.print(f"saved: {out.resolve()}")
    accelerator.end_training()
    return RunResult(metrics=metrics, output_dir=out)
