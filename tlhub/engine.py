"""The training loop: one Accelerate loop from a laptop CPU to several GPUs or nodes.

Canonical order: ``prepare`` -> ``accumulate`` / ``backward`` -> ``gather_for_metrics`` ->
``save_state``. Nothing here knows about modalities or the run directory's layout: it trains any model
that takes a batch dict with ``labels`` and returns ``loss`` and ``logits``, and saves where a
:class:`tlhub.rundir.CheckpointStore` says.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from tlhub.metrics import load_metrics

if TYPE_CHECKING:
    import datasets
    import evaluate
    from accelerate import Accelerator

    from tlhub.recipe import EvalSection, TrainSection
    from tlhub.rundir import CheckpointStore

Collate = Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class TrainingData:
    """The splits the loop reads, how a batch is made, and the classes."""

    train: datasets.Dataset
    validation: datasets.Dataset
    collate: Collate
    labels: list[str]  # class names in id order
    label_column: str


@dataclass
class TrainState:
    """Progress that a resumed run needs besides weights, optimizer, scheduler and RNG states."""

    epoch: int = 0  # epochs finished
    batches_in_epoch: int = 0  # batches of the current epoch already trained
    step: int = 0  # optimizer steps taken
    saves: int = 0  # checkpoints written so far; names the next one
    best_metric: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def _save_checkpoint(accelerator: Accelerator, state: TrainState, store: CheckpointStore) -> None:
    """``save_state`` into the store's next folder, then mark it complete (the main process only)."""
    state.saves += 1
    path = store.next(state.saves)
    accelerator.save_state(str(path))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        store.commit(path)
    accelerator.wait_for_everyone()


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


def evaluate_split(
    accelerator: Accelerator,
    model: torch.nn.Module,
    dataloader: DataLoader,
    metric: evaluate.CombinedEvaluations,
    labels: list[str],
) -> dict[str, float]:
    """Metrics of ``model`` over the whole split, gathered from every process (duplicates dropped).

    ``metric`` is reused across calls: ``compute`` empties it. ``labels`` names the classes for
    per-class metrics.
    """
    model.eval()
    total_loss, count = 0.0, 0
    for batch in dataloader:
        with torch.no_grad():
            outputs = model(**batch)
        predictions, references, losses = accelerator.gather_for_metrics(
            (outputs.logits.argmax(dim=-1), batch["labels"], outputs.loss.detach().repeat(len(batch["labels"])))
        )
        metric.add_batch(predictions=predictions.cpu(), references=references.cpu())
        total_loss += float(losses.float().sum())
        count += len(references)
    results = {name: float(value) for name, value in metric.compute(label_names=labels).items()}
    results["loss"] = total_loss / max(count, 1)
    results["examples"] = count  # every example once, whatever the number of processes
    return results


def fit(
    accelerator: Accelerator,
    model: torch.nn.Module,
    data: TrainingData,
    train: TrainSection,
    evaluation: EvalSection,
    store: CheckpointStore,
    resume: bool = False,
) -> tuple[torch.nn.Module, TrainState, Callable[[datasets.Dataset], dict[str, float]]]:
    """Train, evaluate on validation every epoch, keep the best epoch's weights.

    ``train.class_weighting`` weighs the training loss by class; evaluation losses stay unweighted.
    Returns the prepared model (with the best weights loaded), the final state, and an ``evaluate``
    function for any further split. Metrics include ``loss`` and the number of ``examples`` evaluated.
    """
    labels = data.labels
    train_loader = DataLoader(
        data.train, batch_size=train.batch_size, shuffle=True, collate_fn=data.collate, num_workers=train.num_workers
    )

    def loader(split: datasets.Dataset) -> DataLoader:
        return DataLoader(
            split, batch_size=train.eval_batch_size, collate_fn=data.collate, num_workers=train.num_workers
        )

    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=train.learning_rate, weight_decay=train.weight_decay
    )
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
    state = TrainState()
    accelerator.register_for_checkpointing(state)
    weights = class_weights(data.train[data.label_column], len(labels), train.class_weighting)
    if weights is not None:
        weights = weights.to(accelerator.device)

    def training_loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        outputs = model(**batch)
        if weights is None:
            return outputs.loss  # type: ignore[no-any-return]
        return torch.nn.functional.cross_entropy(outputs.logits.float(), batch["labels"], weight=weights)

    if resume and (checkpoint := store.latest()) is not None:
        accelerator.load_state(str(checkpoint))
        accelerator.print(
            f"resumed from {checkpoint}: epoch {state.epoch + 1}, batch {state.batches_in_epoch}, step {state.step}"
        )

    # Loaded once: each load reads and imports the metric modules.
    metric = load_metrics(evaluation.metrics, experiment_id=f"tlhub-{accelerator.process_index}")
    best_dir = store.best
    for epoch in range(state.epoch, train.epochs):
        model.train()
        train_loader.set_epoch(epoch)
        batches = train_loader
        if state.batches_in_epoch:
            batches = accelerator.skip_first_batches(train_loader, state.batches_in_epoch)
        running, seen = 0.0, 0
        progress = tqdm(
            batches,
            desc=f"epoch {epoch + 1}/{train.epochs}",
            initial=state.batches_in_epoch,
            total=len(train_loader),
            disable=not accelerator.is_local_main_process,
            mininterval=1.0,
        )
        for batch in progress:
            with accelerator.accumulate(model):
                loss = training_loss(batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients and train.max_grad_norm is not None:
                    accelerator.clip_grad_norm_(model.parameters(), train.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            state.batches_in_epoch += 1
            running += float(loss.detach())
            seen += 1
            progress.set_postfix(loss=f"{running / seen:.4f}", refresh=False)
            if accelerator.sync_gradients:
                state.step += 1
                if train.checkpoint_steps and state.step % train.checkpoint_steps == 0:
                    _save_checkpoint(accelerator, state, store)
        progress.close()

        scores = evaluate_split(accelerator, model, validation_loader, metric, labels)
        score = scores[evaluation.select_metric]
        improved = evaluation.select_split == "none" or state.best_metric is None or score > state.best_metric
        if improved:
            state.best_metric, state.best_epoch = score, epoch + 1
            accelerator.save_model(model, best_dir)
        state.history.append(
            {
                "epoch": epoch + 1,
                "train_loss": running / max(seen, 1),
                **{f"validation_{k}": v for k, v in scores.items()},
            }
        )
        shown = "  ".join(f"{k} {v:.4f}" for k, v in scores.items() if k != "examples")
        accelerator.print(
            f"epoch {epoch + 1}/{train.epochs}  train loss {running / max(seen, 1):.4f}  validation {shown}"
            + (("  (kept: last epoch)" if evaluation.select_split == "none" else "  (best so far)") if improved else "")
        )
        state.epoch, state.batches_in_epoch = epoch + 1, 0
        _save_checkpoint(accelerator, state, store)

    accelerator.wait_for_everyone()
    from accelerate.utils import load_checkpoint_in_model

    load_checkpoint_in_model(accelerator.unwrap_model(model), str(best_dir))
    accelerator.print(f"best epoch: {state.best_epoch} (validation {evaluation.select_metric} {state.best_metric:.4f})")

    def evaluate(data: datasets.Dataset) -> dict[str, float]:
        return evaluate_split(accelerator, model, accelerator.prepare(loader(data)), metric, labels)

    return model, state, evaluate
