"""The training loop: one Accelerate loop from a laptop CPU to several GPUs or nodes.

Canonical order: ``prepare`` -> ``accumulate`` / ``backward`` -> ``gather_for_metrics`` ->
``save_state``. Nothing here knows about modalities or the run directory's layout: it trains any model
that takes a batch dict with ``labels`` and returns ``loss`` and ``logits``, and saves where a
:class:`tlhub.rundir.CheckpointStore` says.
"""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from tlhub.errors import CheckpointError
from tlhub.metrics import load_metrics

if TYPE_CHECKING:
    from pathlib import Path

    import datasets
    import evaluate
    from accelerate import Accelerator

    from tlhub.recipe import EvalSection, TrainSection
    from tlhub.rundir import CheckpointStore
    from tlhub.tuning import Schedule

Collate = Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class TrainingData:
    """The splits the loop reads, how a batch is made, and the classes.

    ``collate`` makes evaluation batches; ``train_collate`` (when given) makes training batches, which
    may be randomly augmented.
    """

    train: datasets.Dataset
    validation: datasets.Dataset
    collate: Collate
    labels: list[str]  # class names in id order
    label_column: str
    train_collate: Collate | None = None
    logits: str = "logits"  # the model output's field of class scores (Modality.logits_output)


class TrainState(BaseModel):
    """Progress that a resumed run needs besides weights, optimizer, scheduler and RNG states.

    Saved as JSON beside Accelerate's states (never pickled), so a checkpoint folder someone hands you
    cannot run code when it is resumed; validated strictly when read back.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    epoch: int = Field(0, ge=0)  # epochs finished
    batches_in_epoch: int = Field(0, ge=0)  # batches of the current epoch already trained
    step: int = Field(0, ge=0)  # optimizer steps taken
    saves: int = Field(0, ge=0)  # checkpoints written so far; names the next one
    loss_sum: float = 0.0  # training losses of the current epoch's batches so far, summed ...
    loss_batches: int = Field(0, ge=0)  # ... over this many batches: the epoch's train_loss survives a resume
    best_metric: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, float | int]] = Field(default_factory=list)
    # every train.logging_steps optimizer steps: {step, epoch (fractional), train_loss, learning_rate}
    log: list[dict[str, float | int]] = Field(default_factory=list)
    log_loss_sum: float = 0.0  # training losses of the batches since the last log entry, summed ...
    log_batches: int = Field(0, ge=0)  # ... over this many batches
    watched: float | None = None  # early stopping: the score to beat by min_delta ...
    stale_epochs: int = Field(0, ge=0)  # ... and the epochs since it was last beaten
    stopped: str | None = None  # why training stopped before its last epoch


def make_accelerator(train: TrainSection, logs: Path | None = None, unfreezing: bool = False) -> Accelerator:
    """The accelerator for ``train``'s settings, seeded; ``train.report_to``'s trackers write under ``logs``.

    Batches reach the device without blocking the host (pinned memory, non-blocking copies). One global
    Accelerate state per process: a second run in the same process clears its per-run part (the
    process group, if any, stays). ``unfreezing``: parameters start training epochs after the model is
    wrapped, so distributed data parallel must look for those that receive no gradient yet.
    """
    from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState
    from accelerate.utils import set_seed

    AcceleratorState._reset_state()
    accelerator = Accelerator(
        # Accelerate only runs several CPU processes (torchrun, accelerate launch) when told it is on
        # the CPU; on a machine with no accelerator, that is where it is.
        cpu=not torch.accelerator.is_available(),
        mixed_precision=train.mixed_precision,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, non_blocking=True),
        # Only names the folder: the trackers create it when they start, once the run directory is claimed.
        log_with=_trackers(train.report_to, logs) or None,
        project_dir=str(logs) if train.report_to and logs is not None else None,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)] if unfreezing else None,
        dynamo_backend="inductor" if train.compile else None,  # None: the launcher's config, else none
    )
    set_seed(train.seed)
    return accelerator


def _trackers(names: list[str], logs: Path | None) -> list[Any]:
    """``train.report_to`` for Accelerate: its own trackers by name, a plugin's as a new tracker of the run."""
    if not names:
        return []
    from tlhub.plugins import trackers

    registered = trackers()
    folder = str(logs) if logs is not None else "logs"
    return [registered[name].make(folder) if name in registered else name for name in names]


def usable_cpus(cgroup_limit: Path | str = "/sys/fs/cgroup/cpu.max") -> int:
    """The CPUs this process may run on: its affinity, capped by a cgroup v2 CPU quota (containers)."""
    import os
    from pathlib import Path

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path(cgroup_limit).read_text().split()[:2]  # "max 100000" or "150000 100000"
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def set_threads(train: TrainSection, local_processes: int) -> tuple[int, str]:
    """Set torch's intra-op threads for this process; return them and where the number came from.

    ``train.threads`` if set, else ``OMP_NUM_THREADS`` if set, else the usable CPUs shared among the local
    processes: two processes each spinning on every core slow each other down many times over.
    """
    import os

    if train.threads is not None:
        threads, why = train.threads, "train.threads"
    elif (variable := os.environ.get("OMP_NUM_THREADS", "")).isdigit() and int(variable) > 0:
        threads, why = int(variable), "OMP_NUM_THREADS"
    else:
        cpus = usable_cpus()
        threads = max(1, cpus // max(1, local_processes))
        why = f"{cpus} usable CPU(s) / {local_processes} local process(es)"
    torch.set_num_threads(threads)
    return threads, why


class _LossSums:
    """The running sums of training losses (the epoch's, and since the last log entry), kept on the device.

    Reading a loss back every step would make the host wait for the accelerator once per step; the sums
    are read only where a value is needed (a log entry, a checkpoint, the end of an epoch). They add in the
    order of the steps, in float64 (float32 on MPS), as ``state.loss_sum += float(loss)`` would.
    """

    def __init__(self, state: TrainState, device: torch.device) -> None:
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self.epoch = torch.tensor(state.loss_sum, dtype=dtype, device=device)
        self.log = torch.tensor(state.log_loss_sum, dtype=dtype, device=device)

    def add(self, loss: torch.Tensor) -> None:
        value = loss.detach().to(self.epoch.dtype)
        self.epoch += value
        self.log += value

    def read(self, state: TrainState) -> TrainState:
        """``state`` with the sums as they stand (waits for the device)."""
        state.loss_sum, state.log_loss_sum = float(self.epoch), float(self.log)
        return state


def _save_checkpoint(accelerator: Accelerator, state: TrainState, store: CheckpointStore) -> None:
    """``save_state`` into the store's next folder, add tlhub's own state, then mark it complete."""
    state.saves += 1
    path = store.next(state.saves)
    accelerator.save_state(str(path))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        store.commit(path, state.model_dump_json())
    accelerator.wait_for_everyone()


def _resume(accelerator: Accelerator, store: CheckpointStore) -> TrainState | None:
    """The state of the newest complete checkpoint, loaded into the prepared objects; ``None`` when there is none."""
    from pydantic import ValidationError
    from safetensors import SafetensorError

    if (checkpoint := store.latest()) is None:
        return None
    try:
        state = TrainState.model_validate_json(store.read_state(checkpoint))
        accelerator.load_state(str(checkpoint))
    except (
        ValidationError,
        OSError,
        RuntimeError,
        EOFError,
        ValueError,
        pickle.UnpicklingError,
        SafetensorError,
    ) as exc:
        lines = str(exc).strip().splitlines()
        raise CheckpointError(
            f"output_dir: the checkpoint '{checkpoint}' does not load ({type(exc).__name__}: "
            f"{lines[0][:200] if lines else ''}); delete that folder to resume from an earlier one, or "
            "start again with --overwrite"
        ) from None
    accelerator.print(
        f"resumed from {checkpoint}: epoch {state.epoch + 1}, batch {state.batches_in_epoch}, step {state.step}"
    )
    return state


def _load_best(accelerator: Accelerator, model: torch.nn.Module, best_dir: Path) -> None:
    """Load the best epoch's weights (``accelerator.save_model``: one full copy) back into the trained model.

    Under FSDP each process holds a shard: every process reads the full copy and keeps its shard of it
    (``set_model_state_dict``); otherwise each process loads it into its replica.
    """
    from accelerate.utils import load_checkpoint_in_model

    if accelerator.distributed_type.value != "FSDP":
        load_checkpoint_in_model(accelerator.unwrap_model(model), str(best_dir))
        return
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    full: dict[str, Any] = {}
    for shard in sorted(best_dir.glob("*.safetensors")):
        full.update(load_file(str(shard)))
    set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True))


def _record_log(accelerator: Accelerator, state: TrainState, epoch: float, learning_rate: float) -> None:
    """Add a log entry (the mean loss of the batches since the last one) and send it to the trackers."""
    train_loss = state.log_loss_sum / state.log_batches
    state.log.append(
        {"step": state.step, "epoch": round(float(epoch), 4), "train_loss": train_loss, "learning_rate": learning_rate}
    )
    state.log_loss_sum, state.log_batches = 0.0, 0
    accelerator.log({"train/loss": train_loss, "train/learning_rate": learning_rate}, step=state.step)


def _watch(state: TrainState, score: float, train: TrainSection, metric: str) -> None:
    """Early stopping: count the epochs whose score does not beat the watched one by ``min_delta``."""
    stopping = train.early_stopping
    assert stopping is not None
    if state.watched is None or score > state.watched + stopping.min_delta:
        state.watched, state.stale_epochs = score, 0
        return
    state.stale_epochs += 1
    if state.stale_epochs >= stopping.patience:
        state.stopped = (
            f"after epoch {state.epoch} of {train.epochs}: validation {metric} did not rise by more than "
            f"{stopping.min_delta:g} for {stopping.patience} epoch(s) (train.early_stopping)"
        )


def training_loss(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    weights: torch.Tensor | None,
    label_smoothing: float,
    logits: str = "logits",
) -> torch.Tensor:
    """The loss one training batch contributes: cross-entropy of the class scores (the output field ``logits``
    names) with the class weights and label smoothing, or soft-target cross-entropy for class probabilities
    (mixup, cutmix). The labels never go to the model: families name that argument differently (PatchTST:
    ``target_values``), and tlhub's loss is the same for every family."""
    outputs = model(**{k: v for k, v in batch.items() if k != "labels"})
    return torch.nn.functional.cross_entropy(
        outputs[logits].float(), batch["labels"], weight=weights, label_smoothing=label_smoothing
    )


def class_weights(labels: list[int], num_classes: int, weighting: str) -> torch.Tensor | None:
    """Loss weights per class ('balanced': n / (classes * count), scikit-learn's definition), or ``None``."""
    if weighting == "none":
        return None
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(labels)
    weights = np.ones(num_classes)
    weights[present] = compute_class_weight("balanced", classes=present, y=np.asarray(labels))
    return torch.tensor(weights, dtype=torch.float32)


@dataclass(frozen=True)
class SplitPredictions:
    """The model's logits for every example of a split, in the split's order (float32, on the CPU), and
    the class ids of the examples when the batches carried labels."""

    logits: torch.Tensor  # (examples, classes)
    references: torch.Tensor | None  # (examples,)


def predict_split(
    model: torch.nn.Module,
    dataloader: DataLoader,
    accelerator: Accelerator | None = None,
    progress: bool = False,
    logits: str = "logits",
) -> SplitPredictions:
    """Run ``model`` over every batch; with an ``accelerator`` (and its prepared ``dataloader``), gather
    every process's examples once each (duplicates of the last batch dropped). ``logits`` names the output
    field that holds the class scores (``Modality.logits_output``)."""
    model.eval()
    device = next(model.parameters()).device
    scored, references = [], []
    for batch in tqdm(dataloader, desc="predict", disable=not progress or len(dataloader) < 2, mininterval=1.0):
        if accelerator is None:
            batch = {k: v.to(device) for k, v in batch.items()}
        with torch.no_grad():
            outputs = model(**{k: v for k, v in batch.items() if k != "labels"})
        scores = outputs[logits].float()
        found = (scores, batch["labels"]) if "labels" in batch else (scores,)
        if accelerator is not None:
            found = accelerator.gather_for_metrics(found)
        scored.append(found[0].cpu())
        if len(found) > 1:
            references.append(found[1].cpu())
    return SplitPredictions(torch.cat(scored), torch.cat(references) if references else None)


def score_predictions(
    predictions: SplitPredictions, metric: evaluate.CombinedEvaluations, labels: list[str]
) -> dict[str, float]:
    """The metrics of labelled predictions, the mean cross-entropy ``loss``, and the number of ``examples``.

    ``metric`` is reused across calls: ``compute`` empties it. ``labels`` names the classes for
    per-class metrics.
    """
    references = predictions.references
    assert references is not None, "scoring needs the examples' labels"
    results = {
        name: float(value)
        for name, value in metric.compute(
            predictions=predictions.logits.argmax(dim=-1), references=references, label_names=labels
        ).items()
    }
    results["loss"] = float(torch.nn.functional.cross_entropy(predictions.logits, references))
    results["examples"] = len(references)  # every example once, whatever the number of processes
    return results


def evaluate_split(
    accelerator: Accelerator,
    model: torch.nn.Module,
    dataloader: DataLoader,
    metric: evaluate.CombinedEvaluations,
    labels: list[str],
    logits: str = "logits",
) -> dict[str, float]:
    """Metrics of ``model`` over the whole split, gathered from every process (see :func:`score_predictions`)."""
    return score_predictions(predict_split(model, dataloader, accelerator, logits=logits), metric, labels)


def make_optimizer(
    model: torch.nn.Module, train: TrainSection, schedule: Schedule | None = None
) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters: one group at ``train.learning_rate``, or one group per block of
    ``schedule`` at its scaled rate (group 0, the head, at the peak rate: the rate the log reports).

    A parameter of a group not yet unfrozen has no gradient, and AdamW leaves such a parameter (and its
    moments) untouched, weight decay included.
    """
    if schedule is None:
        groups = [([p for p in model.parameters() if p.requires_grad], train.learning_rate)]
    else:
        named = dict(model.named_parameters())
        groups = [
            ([named[n] for n in names], train.learning_rate * scale)
            for names, scale in zip(schedule.groups, schedule.scales, strict=True)
        ]
    # fused: one kernel per step for all parameters, as HF Trainer's default (2.0 against 5.0 ms per step for
    # torch's CPU default, the for-loop, on the main job's ViT: docs/benchmarks.md); the same update up to rounding
    fused = all(p.device.type in ("cpu", "cuda") for params, _ in groups for p in params)
    return torch.optim.AdamW(
        [{"params": params, "lr": lr} for params, lr in groups],
        lr=train.learning_rate,
        weight_decay=train.weight_decay,
        fused=fused or None,
    )


def _unfreeze(groups: list[list[torch.nn.Parameter]], schedule: Schedule, epoch: int) -> None:
    """Let the schedule's groups for ``epoch`` train; the rest stay frozen."""
    training = schedule.training_groups(epoch)
    for i, params in enumerate(groups):
        for param in params:
            param.requires_grad_(i < training)


def frozen_in_eval(module: torch.nn.Module) -> None:
    """Put every submodule whose parameters are all frozen in eval mode (after ``model.train()``).

    A frozen layer then computes what it computed when pretrained (no dropout, normalisation statistics
    fixed), and head-only training on cached features computes exactly what training through the frozen
    layers does. Parameter-free modules (a dropout before the head) follow their parent. LoRA models
    keep peft's behaviour (its adapters sit inside frozen layers, whose dropout stays on), except for
    frozen batch norms: the adapter does not carry their running statistics, so they must keep the base
    checkpoint's for the adapter, loaded onto the base, to predict what the trained model does.
    """
    if hasattr(module, "peft_config"):
        for layer in module.modules():
            frozen = not any(p.requires_grad for p in layer.parameters())
            if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm) and frozen:
                layer.eval()
        return
    _frozen_in_eval(module)


def _frozen_in_eval(module: torch.nn.Module) -> None:
    params = list(module.parameters())
    if params and not any(p.requires_grad for p in params):
        module.eval()
        return
    for child in module.children():
        _frozen_in_eval(child)


def evaluate_dataset(
    accelerator: Accelerator,
    model: torch.nn.Module,
    split: datasets.Dataset,
    collate: Collate,
    train: TrainSection,
    metric: evaluate.CombinedEvaluations,
    labels: list[str],
    logits: str = "logits",
) -> tuple[dict[str, float], SplitPredictions]:
    """``model``'s metrics (see :func:`score_predictions`) and predictions over ``split``, batched by
    ``collate``, under the run's precision, gathered from every process."""
    loader = accelerator.prepare(
        DataLoader(split, batch_size=train.eval_batch_size, collate_fn=collate, num_workers=train.num_workers)
    )
    with accelerator.autocast():
        predictions = predict_split(model, loader, accelerator, logits=logits)
    return score_predictions(predictions, metric, labels), predictions


def fit(
    accelerator: Accelerator,
    model: torch.nn.Module,
    data: TrainingData,
    train: TrainSection,
    evaluation: EvalSection,
    store: CheckpointStore,
    resume: bool = False,
    schedule: Schedule | None = None,
) -> tuple[torch.nn.Module, TrainState]:
    """Train, evaluate on validation every epoch, keep the best epoch's weights.

    ``train.class_weighting`` weighs the training loss by class; evaluation losses stay unweighted.
    Returns the prepared model (with the best weights loaded) and the final state; further splits are
    scored with :func:`evaluate_dataset`.
    Every ``train.logging_steps`` optimizer steps (and at the last step) the training loss and learning
    rate go into ``state.log`` and, with each epoch's validation metrics, to the accelerator's trackers.
    ``schedule`` (``full``'s ``unfreeze`` / ``layer_decay``) sets which parameters train in each epoch and
    at which rate.
    """
    labels = data.labels
    train_loader = DataLoader(
        data.train,
        batch_size=train.batch_size,
        shuffle=True,
        collate_fn=data.train_collate or data.collate,
        num_workers=train.num_workers,
    )

    def loader(split: datasets.Dataset) -> DataLoader:
        return DataLoader(
            split, batch_size=train.eval_batch_size, collate_fn=data.collate, num_workers=train.num_workers
        )

    optimizer = make_optimizer(model, train, schedule)
    named = dict(model.named_parameters())
    groups = [[named[n] for n in names] for names in schedule.groups] if schedule is not None else []
    # The prepared scheduler steps once per process per optimizer step, so count steps on the full data.
    total_steps = math.ceil(len(train_loader) / train.gradient_accumulation_steps) * train.epochs
    scheduler = get_scheduler(
        train.scheduler,
        optimizer=optimizer,
        num_warmup_steps=int(train.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    model, optimizer, train_loader, scheduler, validation_loader = accelerator.prepare(
        model, optimizer, train_loader, scheduler, loader(data.validation)
    )
    state = (_resume(accelerator, store) if resume else None) or TrainState()
    weights = class_weights(data.train[data.label_column], len(labels), train.class_weighting)
    if weights is not None:
        weights = weights.to(accelerator.device)

    # Loaded once: each load reads and imports the metric modules.
    metric = load_metrics(evaluation.metrics, experiment_id=f"tlhub-{accelerator.process_index}")
    best_dir = store.best
    for epoch in range(state.epoch, train.epochs):
        if state.stopped:  # resumed after the early stop's checkpoint
            break
        if schedule is not None:
            _unfreeze(groups, schedule, epoch)
        model.train()
        frozen_in_eval(accelerator.unwrap_model(model))
        train_loader.set_epoch(epoch)
        batches = train_loader
        if state.batches_in_epoch:
            batches = accelerator.skip_first_batches(train_loader, state.batches_in_epoch)
        sums = _LossSums(state, accelerator.device)
        started, examples = time.perf_counter(), 0
        # closed on the way out too: an interrupted run's last line is its message, not a bar drawn at exit
        with tqdm(
            batches,
            desc=f"epoch {epoch + 1}/{train.epochs}",
            initial=state.batches_in_epoch,
            total=len(train_loader),
            disable=not accelerator.is_local_main_process,
            mininterval=1.0,
        ) as progress:
            for batch in progress:
                examples += len(batch["labels"])
                with accelerator.accumulate(model):
                    loss = training_loss(model, batch, weights, train.label_smoothing, data.logits)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and train.max_grad_norm is not None:
                        accelerator.clip_grad_norm_(model.parameters(), train.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                state.batches_in_epoch += 1
                sums.add(loss)
                state.loss_batches += 1
                state.log_batches += 1
                if accelerator.sync_gradients:
                    state.step += 1
                    if state.step % train.logging_steps == 0:
                        done = epoch + state.batches_in_epoch / len(train_loader)
                        _record_log(accelerator, sums.read(state), done, scheduler.get_last_lr()[0])
                        sums.log.zero_()
                        progress.set_postfix(loss=f"{state.loss_sum / state.loss_batches:.4f}", refresh=False)
                    if train.checkpoint_steps and state.step % train.checkpoint_steps == 0:
                        _save_checkpoint(accelerator, sums.read(state), store)
        sums.read(state)  # waits for the device: the epoch's training time is complete
        seconds = time.perf_counter() - started

        scores = evaluate_split(accelerator, model, validation_loader, metric, labels, data.logits)
        score = scores[evaluation.select_metric]
        accelerator.log({f"validation/{k}": v for k, v in scores.items() if k != "examples"}, step=state.step)
        improved = evaluation.select_split == "none" or state.best_metric is None or score > state.best_metric
        if improved:
            state.best_metric, state.best_epoch = score, epoch + 1
            accelerator.save_model(model, best_dir)
        train_loss = state.loss_sum / max(state.loss_batches, 1)
        state.history.append(
            {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                # the batches this run trained (after --resume: those left of the epoch), every process's
                "train_seconds": round(seconds, 3),
                "train_samples_per_second": round(examples * accelerator.num_processes / max(seconds, 1e-9), 1),
                **{f"validation_{k}": v for k, v in scores.items()},
            }
        )
        shown = "  ".join(f"{k} {v:.4f}" for k, v in scores.items() if k != "examples")
        accelerator.print(
            f"epoch {epoch + 1}/{train.epochs}  train loss {train_loss:.4f}  validation {shown}"
            + (("  (kept: last epoch)" if evaluation.select_split == "none" else "  (best so far)") if improved else "")
        )
        state.epoch, state.batches_in_epoch, state.loss_sum, state.loss_batches = epoch + 1, 0, 0.0, 0
        if train.early_stopping is not None and epoch + 1 < train.epochs:
            _watch(state, score, train, evaluation.select_metric)
        if state.log_batches and (state.stopped or state.epoch == train.epochs):  # the last step is always logged
            _record_log(accelerator, state, state.epoch, scheduler.get_last_lr()[0])
        _save_checkpoint(accelerator, state, store)
        if state.stopped:
            accelerator.print(f"stopped early {state.stopped}")
            break

    accelerator.wait_for_everyone()
    _load_best(accelerator, model, best_dir)
    accelerator.print(f"best epoch: {state.best_epoch} (validation {evaluation.select_metric} {state.best_metric:.4f})")

    return model, state
