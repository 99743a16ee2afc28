"""One recipe, start to finish: the plan (every check, in :mod:`tlhub.plan`), then build, train, evaluate, save.

:func:`run` decides nothing the plan has decided: it builds the model the plan describes, trains it in
the run directory the plan checked, and writes what :class:`tlhub.rundir.RunDir` names.
"""

from __future__ import annotations

import errno
import hashlib
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlhub.errors import Interrupted, OutputDirError, TlhubError
from tlhub.plan import Plan, make_plan
from tlhub.recipe import Recipe

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator

    from tlhub.rundir import RunDir

__all__ = ["Plan", "RunResult", "make_plan", "plan_run", "run"]


@dataclass
class RunResult:
    """What :func:`run` returns: ``metrics[split][metric]`` and where the model was saved."""

    metrics: dict[str, dict[str, float]]
    output_dir: Path


def plan_run(recipe: Recipe | str | Path, overrides: dict[str, Any] | list[str] | None = None) -> Plan:
    """Everything ``tlhub validate`` checks (see :func:`tlhub.plan.make_plan`)."""
    return make_plan(recipe, overrides)


def run(
    recipe: Recipe | str | Path | Plan,
    overrides: dict[str, Any] | list[str] | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    command: str | None = None,
) -> RunResult:
    """Run a recipe (a file path, a :class:`Recipe` or a :class:`Plan`); return its metrics and output directory.

    ``overrides`` sets dotted keys (``{"train.epochs": 1}`` or ``["train.epochs=1"]``). Works the same
    under ``accelerate launch`` / ``torchrun`` with several processes.
    """
    started = time.time()
    plan = recipe if isinstance(recipe, Plan) else make_plan(recipe, overrides)
    return _execute(plan, resume, overwrite, command or f"tlhub.run({plan.source!r}, overrides={overrides!r})", started)


def _accelerator(plan: Plan, logs: Path) -> Accelerator:
    """The run's accelerator; train.report_to's trackers will write under ``logs`` (:func:`_start_trackers`)."""
    from tlhub.engine import make_accelerator

    tuning = plan.recipe.tuning
    unfreezing = tuning.strategy == "full" and tuning.full.unfreeze is not None
    return make_accelerator(plan.recipe.train, logs, unfreezing=unfreezing)


# The environment variables `accelerate launch` sets from its config file, read by Accelerator() in each process.
_LAUNCH_SETTINGS = ("ACCELERATE_", "FSDP_")


def _check_launch(plan: Plan, accelerator: Accelerator) -> None:
    """Refuse what a sharded launch cannot do; say when the launcher asked for sharding that did not happen."""
    import os

    from tlhub.errors import RecipeError

    running = accelerator.distributed_type.value
    if running in ("FSDP", "DEEPSPEED") and plan.recipe.tuning.strategy == "lora":
        raise RecipeError(
            [
                f"tuning.strategy: lora is not supported under {running} (the adapter is merged into weights that "
                "are sharded over the processes); use recipes/accelerate/ddp.yaml, or strategy full or head"
            ],
            source=plan.source,
        )
    for flag, kind in (("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DEEPSPEED")):
        if os.environ.get(flag, "").lower() == "true" and running != kind:
            accelerator.print(
                f"warning: the launcher asked for {kind}, but Accelerate runs {running} on "
                f"{accelerator.device.type}: {kind} needs GPUs (Accelerate enables it only there); every process "
                "holds the whole model (docs/distributed.md)"
            )
            # transformers reads the flag too: with FSDP's low-memory loading, only rank 0 would load the weights
            # and wait for FSDP to hand them to the others, which plain data parallel never does
            os.environ[flag] = "false"


def _processes(plan: Plan, accelerator: Accelerator) -> dict[str, Any]:
    """Set this process's CPU threads; what run.json says of the processes, device and threads."""
    import os

    from tlhub.engine import set_threads
    from tlhub.model import attention_for

    local = int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes))
    threads, why = set_threads(plan.recipe.train, local)
    accelerator.print(f"threads: {threads} per process ({why})")
    return {
        "processes": accelerator.num_processes,
        "local_processes": local,
        "distributed_type": accelerator.distributed_type.value,  # NO, MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED
        "device": str(accelerator.device),
        "mixed_precision": accelerator.mixed_precision,
        "attention": attention_for(plan.recipe.model.attention) or "default",
        "compile": accelerator.state.dynamo_plugin.backend.value.lower(),  # "no", or torch.compile's backend
        "threads": threads,
        "threads_from": why,
        # what `accelerate launch --config_file` handed this process from its config (none under torchrun)
        "accelerate_config": {k: v for k, v in sorted(os.environ.items()) if k.startswith(_LAUNCH_SETTINGS)},
    }


def _hardware(accelerator: Accelerator) -> str:
    """Where the run trained, in words: processes, device (its name for a GPU) and CPU threads."""
    import torch

    device = str(accelerator.device)
    if accelerator.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(accelerator.device)})"
    return f"{accelerator.num_processes} process(es) on {device}, {torch.get_num_threads()} CPU thread(s) each"


def _start_trackers(plan: Plan, accelerator: Accelerator, rundir: RunDir) -> None:
    """Start train.report_to's trackers (logs/ recorded in the run directory first) with the flat recipe.

    A resumed run starts them again on the same folder: its records follow the interrupted run's.
    """
    if not plan.recipe.train.report_to:
        return
    if accelerator.is_main_process:
        rundir.record_folder(rundir.logs)
    accelerator.init_trackers(project_name=rundir.path.absolute().name, config=_tracker_config(plan.recipe))


def _tracker_config(recipe: Recipe) -> dict[str, str | int | float | bool]:
    """The recipe as one level of dotted keys (``train.learning_rate``): every tracker takes scalars, so
    anything else (null, a list, an empty mapping) is given as its JSON text."""
    import json

    flat: dict[str, str | int | float | bool] = {}

    def add(value: Any, key: str) -> None:
        if isinstance(value, dict) and value:
            for name, inner in value.items():
                add(inner, f"{key}.{name}" if key else str(name))
        elif isinstance(value, str | int | float | bool):
            flat[key] = value
        else:
            flat[key] = json.dumps(value)

    add(recipe.model_dump(mode="json"), "")
    return flat


def _write_curves(rundir: RunDir, state: Any, metric: str) -> None:
    """``curves.png``: training loss, validation metric and learning rate over the run (``state``: the engine's)."""
    from tlhub.plots import curves

    rundir.write(rundir.curves, curves(state.log, state.history, metric, best_epoch=state.best_epoch))


def _collate(plan: Plan, training: bool = False) -> Any:
    import torch

    from tlhub.data import INDEX_COLUMN

    r = plan.recipe
    encoded = plan.modality.collate(
        plan.processor, plan.config, plan.options, r.data.input_columns, r.data.label_column, training
    )
    if not training:
        return encoded
    seed = r.train.seed

    def collate(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        # A training batch's random augmentation draws from a generator seeded by the run's seed and the
        # batch's examples in order, not from the global one: the loader encodes each batch ahead of the
        # step that trains it, so a checkpoint's RNG state would not replay it; this does, after --resume
        # too. The order of examples changes every epoch, and so does each example's augmentation.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_batch_seed(seed, [e[INDEX_COLUMN] for e in examples]))
            return encoded(examples)

    return collate


def _batch_seed(seed: int, indices: list[int]) -> int:
    digest = hashlib.blake2b(f"{seed}:{indices}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # torch.manual_seed takes up to 2**63 - 1


# Errors of the machine rather than of the recipe: one line naming the path, and the run stays resumable.
_WRITE_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EIO}
# The same errors as the writers that do not raise OSError word them: safetensors (Rust) quotes the OS
# error; torch's zip writer reports the short write.
_WRITE_ERROR_WORDS = {
    "No space left on device": "No space left on device",
    "Read-only file system": "Read-only file system",
    "Disk quota exceeded": "Disk quota exceeded",
    "Permission denied": "Permission denied",
    "unexpected pos": "the write stopped short (no space left on device?)",
}


def _write_failure(exc: BaseException) -> str | None:
    """What went wrong, when ``exc`` is the machine refusing a write; ``None`` otherwise."""
    if isinstance(exc, OSError):
        return exc.strerror if exc.errno in _WRITE_ERRORS else None
    text = str(exc)
    return next((why for words, why in _WRITE_ERROR_WORDS.items() if words in text), None)


def _execute(plan: Plan, resume: bool, overwrite: bool, command: str, started: float) -> RunResult:
    from accelerate.utils import broadcast_object_list

    from tlhub.rundir import RunDir

    rundir = RunDir(plan.output_dir)
    record = _run_record(plan, command)
    accelerator = _accelerator(plan, rundir.logs)
    record["processes"] = _processes(plan, accelerator)  # the launcher's settings as it handed them
    _check_launch(plan, accelerator)
    decision = [rundir.claim(resume, overwrite, record) if accelerator.is_main_process else None]
    decision = broadcast_object_list(decision)  # the main process decided under the lock; the others follow
    begun = False
    try:
        surgery, tuned, schedule = _build(plan)
        if accelerator.is_main_process:
            rundir.start(decision[0], record)
        begun = True
        accelerator.wait_for_everyone()
        _start_trackers(plan, accelerator, rundir)
        resume = decision[0] == "resume"
        return _train_and_save(plan, accelerator, rundir, surgery, tuned, schedule, resume, command, started)
    except KeyboardInterrupt:
        _close_progress_bars()
        raise Interrupted(f"interrupted: the run in '{rundir.path}' stopped; {_how_to_go_on(rundir)}") from None
    except TlhubError as exc:
        if begun:
            rundir.fail(str(exc))
        raise
    except Exception as exc:  # a write error, as OSError or as safetensors and torch word it; else a bug
        if (why := _write_failure(exc)) is None:
            raise
        where = getattr(exc, "filename", None) or rundir.path
        if begun:
            rundir.checkpoints.discard_incomplete()  # frees the space a full disk needs for run.json
            rundir.fail(f"{why}: {where}")
        raise OutputDirError(
            f"output_dir: cannot write '{where}' ({why}); fix that, then {_how_to_go_on(rundir)}"
        ) from None
    finally:
        if accelerator.is_main_process:
            rundir.release(failed_before_start=not begun)


def _close_progress_bars() -> None:
    """Close every progress bar still open, one an interrupt caught half made included (tqdm registers a bar
    before drawing it): left to the garbage collector, a bar is redrawn at exit, after the interrupt's message."""
    from tqdm.std import tqdm

    for bar in list(tqdm._instances):
        bar.close()


def _how_to_go_on(rundir: RunDir) -> str:
    if rundir.checkpoints.latest() is not None:
        return "pass --resume to continue from the last checkpoint"
    return "the run had no checkpoint yet: start it again with --overwrite"


# The libraries whose versions decide what a run computes, recorded with every run.
_LIBRARIES = ("tlhub", "torch", "torchaudio", "transformers", "datasets", "accelerate", "peft", "evaluate")


def _versions(plan: Plan) -> dict[str, str | None]:
    """Python, the libraries, and the distribution of the plugin that built the model."""
    from importlib.metadata import PackageNotFoundError, entry_points, version

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    plugin = next((ep for ep in entry_points(group="tlhub") if ep.name == plan.modality.plugin), None)
    dist = plugin.dist if plugin is not None else None
    where = f"{dist.name} {dist.version}" if dist is not None else "not installed from a distribution"
    return {
        "python": platform.python_version(),
        **{name: installed(name) for name in _LIBRARIES},
        "plugin": f"{plan.modality.plugin} ({where})",
    }


def _run_record(plan: Plan, command: str) -> dict[str, Any]:
    """What ``run.json`` says of the run from its start."""

    from tlhub.checkpoint import fingerprint

    r, splits = plan.recipe, plan.splits
    return {
        "recipe_file": plan.source,
        "command": command,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": r.model_dump(mode="json"),
        "data": {
            "description": f"'{r.data.source}'" + (f" ({r.data.data_files})" if r.data.data_files else ""),
            "labels": splits.labels,
            "sizes": {role: len(split) for role, split in splits.items()},
        },
        "versions": _versions(plan),
        "base_fingerprint": fingerprint(plan.checkpoint),
    }


def _build(plan: Plan) -> tuple[Any, Any, Any]:
    """The model with its new head, the strategy applied, and the strategy's schedule; what was done is printed."""
    from accelerate.state import PartialState

    from tlhub.model import attention_for, build_model
    from tlhub.tuning import apply_strategy, count_parameters, strategy_schedule

    r, modality, splits = plan.recipe, plan.modality, plan.splits
    model, surgery = build_model(
        modality,
        plan.checkpoint,
        plan.config,
        plan.options,
        trust_remote_code=r.model.trust_remote_code,
        allow_partial_load=r.model.allow_partial_load,
        init=r.model.init,
        attention=attention_for(r.model.attention),
    )
    tuned = apply_strategy(r.tuning.strategy, model, r.tuning.options(), modality)
    schedule = strategy_schedule(r.tuning.strategy, tuned, r.tuning.options(), modality)
    trainable, total = count_parameters(tuned)
    state = PartialState()
    say = state.print
    say(f"tlhub: {plan.source} -> {plan.output_dir}  ({state.num_processes} process(es), {state.device})")
    origin = f" from {plan.checkpoint_origin}" if plan.checkpoint_origin else ""
    say(
        f"base: {r.model.checkpoint or 'none (from scratch)'} [{plan.config.model_type}, {modality.input_type}]{origin}"
    )
    say("data: " + "; ".join(splits.notes))
    for line in surgery.lines + [f"adapted: {a}" for a in plan.adaptations]:
        say(line)
    say(f"labels: {dict(enumerate(splits.labels))}")
    parameters = f"{trainable:,} trainable of {total:,} parameters"
    rate = r.tuning.learning_rate(r.train.learning_rate)
    say(f"strategy {r.tuning.strategy}: {parameters}, learning rate {rate:g}")
    for line in schedule.describe(rate) if schedule is not None else []:
        say(f"  {line}")
    if r.tuning.strategy == "head" and not plan.head_on_features:
        from tlhub.feature_cache import unusable

        say(f"head: every step runs the frozen layers too ({unusable(r, modality, plan.options)})")
    return surgery, tuned, schedule


def _write_test_report(rundir: RunDir, splits: Any, metrics: dict[str, float], predictions: Any) -> None:
    """The test split's report (:mod:`tlhub.report`) into ``eval/test/``, as ``tlhub eval`` writes one."""
    from tlhub.report import make_report

    title = f"{rundir.path.name}: test split ({metrics['examples']} examples)"
    report = make_report(title, predictions, metrics, splits.labels, splits.test_inputs)
    for name, content in report.files().items():
        rundir.write(rundir.evaluation / "test" / name, content)


def _on_features(plan: Plan, accelerator: Accelerator, model: Any, data: Any, base: str | None) -> tuple[Any, Any]:
    """The training data as cached features of the frozen layers, and the head that trains on them
    (:mod:`tlhub.feature_cache`)."""
    from dataclasses import replace

    from tlhub.data import INDEX_COLUMN
    from tlhub.feature_cache import cache_folder, cached_features, collate_features, head_on_features

    batch_size = plan.recipe.train.eval_batch_size
    model.to(accelerator.device)
    train, validation = (
        cached_features(
            plan, model, split, data.collate, accelerator, batch_size, [data.label_column, INDEX_COLUMN], base
        )
        for split in (data.train, data.validation)
    )
    accelerator.print(
        f"head: trains on the frozen layers' output, computed once per example ({len(train)} train and "
        f"{len(validation)} validation vectors, cached in {cache_folder()})"
    )
    collate = collate_features(data.label_column)
    # the head on features answers with transformers' "logits", whatever the family's own output names them
    cached = replace(data, train=train, validation=validation, collate=collate, train_collate=None, logits="logits")
    return cached, head_on_features(model, plan.modality)


def _train_and_save(
    plan: Plan,
    accelerator: Accelerator,
    rundir: RunDir,
    surgery: Any,
    tuned: Any,
    schedule: Any,
    resume: bool,
    command: str,
    started: float,
) -> RunResult:
    from tlhub.card import CardFacts, base_provenance, model_card
    from tlhub.data import INDEX_COLUMN
    from tlhub.engine import TrainingData, evaluate_dataset, fit
    from tlhub.metrics import load_metrics
    from tlhub.recipe import dump_recipe
    from tlhub.tuning import count_parameters

    r, splits = plan.recipe, plan.splits
    columns = [*r.data.input_columns, r.data.label_column]
    data = TrainingData(
        train=splits.train.select_columns([*columns, INDEX_COLUMN]),  # the numbers seed each batch's augmentation
        validation=splits.validation.select_columns(columns),
        collate=_collate(plan),
        train_collate=_collate(plan, training=True),
        labels=splits.labels,
        label_column=r.data.label_column,
        logits=plan.modality.logits_output,
    )
    settings = r.train.model_copy(update={"learning_rate": r.tuning.learning_rate(r.train.learning_rate)})
    if plan.head_on_features:
        base = (rundir.read_record() or {}).get("base_fingerprint")  # hashed when the run started
        data, tuned = _on_features(plan, accelerator, tuned, data, base)
    trained, state = fit(
        accelerator, tuned, data, settings, r.eval, rundir.checkpoints, resume=resume, schedule=schedule
    )
    # on cached features, the trained head goes back into the whole model, which is scored and saved
    final = accelerator.unwrap_model(trained).model if plan.head_on_features else trained
    metric = load_metrics(r.eval.metrics, experiment_id=f"tlhub-{accelerator.process_index}")

    def evaluate(split: Any) -> Any:
        return evaluate_dataset(
            accelerator, final, split, _collate(plan), settings, metric, splits.labels, plan.modality.logits_output
        )

    # the kept epoch's validation scores, as fit measured them on these very weights: not evaluated twice
    (kept,) = [h for h in state.history if h["epoch"] == state.best_epoch]
    validation = {k.removeprefix("validation_"): v for k, v in kept.items() if k.startswith("validation_")}
    test, test_predictions = evaluate(splits.test.select_columns(columns))
    metrics = {"validation": validation, "test": test}
    accelerator.print("test: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics["test"].items() if k != "examples"))

    accelerator.wait_for_everyone()
    # a sharded model (FSDP, DeepSpeed ZeRO-3) is gathered into one full copy, every process taking part
    sharded = accelerator.distributed_type.value in ("FSDP", "DEEPSPEED")
    state_dict = accelerator.get_state_dict(final) if sharded else None
    if accelerator.is_main_process:
        trainable, total = count_parameters(tuned)
        rundir.save_model(accelerator.unwrap_model(final), plan.processor, state_dict=state_dict)
        facts = CardFacts(
            recipe=r,
            command=command,
            base=r.model.checkpoint,
            base_origin=plan.checkpoint_origin,
            base_provenance=base_provenance(plan.checkpoint),
            model_type=plan.config.model_type,
            input_type=plan.modality.input_type,
            pipeline_task=plan.modality.pipeline_task,
            labels=splits.labels,
            data_notes=splits.notes,
            adaptations=plan.adaptations,
            surgery=surgery.lines,
            trainable=trainable,
            total=total,
            best_epoch=state.best_epoch,
            metrics=metrics,
            history=state.history,
            stopped_early=state.stopped,
            versions=(rundir.read_record() or {}).get("versions", {}),
            plugin_options=plan.options.model_dump(mode="json", exclude_defaults=True) if plan.options else {},
            wall_seconds=time.time() - started,
            hardware=_hardware(accelerator),
        )
        _write_curves(rundir, state, r.eval.select_metric)
        _write_test_report(rundir, splits, test, test_predictions)
        rundir.finish(
            metrics,
            dump_recipe(r),
            model_card(rundir.path.name, facts),
            {
                "metrics": metrics,
                "best_epoch": state.best_epoch,
                "stopped_early": state.stopped,
                "history": state.history,
                "log": state.log,
                "trainable_parameters": trainable,
                "total_parameters": total,
                "wall_seconds": round(time.time() - started, 1),
            },
        )
    accelerator.wait_for_everyone()
    accelerator.print(f"saved: {rundir.path.resolve()}")
    accelerator.end_training()
    return RunResult(metrics=metrics, output_dir=rundir.path)
