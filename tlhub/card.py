"""The model card (``README.md`` of a run directory): a Hugging Face model card with the run's facts.

It states the base checkpoint and what it was pretrained on, the data and every adaptation, the head
surgery, the trainable parameters, the results, and the command that reproduces the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlhub.checkpoint import is_hub_id
from tlhub.rundir import read_run_record

if TYPE_CHECKING:
    from tlhub.recipe import Recipe


def base_provenance(checkpoint: str | None) -> str:
    """What a base checkpoint was pretrained on, as its own run records it (tlhub runs) or its card says."""
    from huggingface_hub import ModelCard

    if checkpoint is None:
        return "none: trained from scratch"
    folder = Path(checkpoint)
    info = read_run_record(folder)
    if info is not None:
        data = info.get("data", {})
        test = info.get("metrics", {}).get("test", {})
        scores = ", ".join(f"{k} {v:.4f}" for k, v in test.items() if k not in ("loss", "examples"))
        return (
            f"supervised pretraining by tlhub on {data.get('description', 'unrecorded data')} "
            f"({len(data.get('labels', []))} classes: {', '.join(data.get('labels', []))}); "
            f"its test split: {scores or 'not recorded'}"
        )
    readme = folder / "README.md"
    if readme.is_file():
        datasets_used = ModelCard.load(readme).data.to_dict().get("datasets")
        if datasets_used:
            return f"per its model card: {', '.join(datasets_used)}"
    return "not recorded with the checkpoint"


@dataclass
class CardFacts:
    """Everything the model card states, gathered by the run."""

    recipe: Recipe
    command: str
    base: str | None  # as the recipe names it
    base_origin: str | None  # where it was found: local folder, HF cache, a package's copy, the Hub
    base_provenance: str
    model_type: str
    input_type: str
    pipeline_task: str
    labels: list[str]
    data_notes: list[str]
    adaptations: list[str]
    surgery: list[str]
    trainable: int
    total: int
    best_epoch: int | None
    metrics: dict[str, dict[str, float]]
    history: list[dict[str, Any]]
    stopped_early: str | None = None  # why training ended before its last epoch (train.early_stopping)
    versions: dict[str, str | None] = field(default_factory=dict)  # python, the libraries, the plugin's dist
    plugin_options: dict[str, Any] = field(default_factory=dict)  # model.options the recipe set (not defaults)
    wall_seconds: float | None = None  # the command's, start to card (a resumed run: since it was resumed)
    hardware: str = ""  # e.g. "1 process on cuda:0 (NVIDIA H200), 2 CPU threads"


def _loading_opt_ins(recipe: Recipe) -> list[str]:
    """The recipe's opt-ins to riskier loading, stated so that whoever uses the model knows how it was built."""
    lines = []
    if recipe.model.trust_remote_code:
        lines.append(
            "model.trust_remote_code: on: Python code shipped with the checkpoint was allowed to run to load it"
        )
    if recipe.model.allow_partial_load:
        lines.append(
            "model.allow_partial_load: on: tensors outside the head that did not fit the checkpoint's config "
            "started from random values or were dropped (see Head surgery)"
        )
    return lines


def _schedule(recipe: Recipe) -> str:
    t = recipe.train
    accumulation = f" x {t.gradient_accumulation_steps} accumulated" if t.gradient_accumulation_steps > 1 else ""
    full = recipe.tuning.full if recipe.tuning.strategy == "full" else None
    layers = ""
    if full is not None and full.unfreeze is not None:
        pace = full.unfreeze.layers_per_epoch
        then = f"{pace} more block(s) per epoch from the top" if pace else "the whole backbone"
        layers += f"; the head alone for {full.unfreeze.head_epochs} epoch(s), then {then}"
    if full is not None and full.layer_decay is not None:
        layers += f"; each block's learning rate x {full.layer_decay:g} per block below the head"
    return (
        f"{t.epochs} epoch(s) of batch {t.batch_size}{accumulation}, AdamW at learning rate "
        f"{recipe.tuning.learning_rate(t.learning_rate):g} (weight decay {t.weight_decay:g}), {t.scheduler} schedule "
        f"with {t.warmup_ratio:.0%} warm-up, {t.mixed_precision} mixed precision, seed {t.seed}{layers}"
        + (f"; label smoothing {t.label_smoothing:g}" if t.label_smoothing else "")
    )


def _wall_time(facts: CardFacts) -> str:
    trained = sum(h.get("train_seconds", 0.0) for h in facts.history)
    if facts.wall_seconds is None:
        return ""
    resumed = " since the last --resume" if "--resume" in facts.command else ""
    return (
        f"\n- wall time: {facts.wall_seconds / 60:.1f} min{resumed} ({trained / 60:.1f} min of it in training "
        f"steps) on {facts.hardware}"
    )


def model_card(name: str, facts: CardFacts) -> str:
    """The text of ``README.md``: Hugging Face model card metadata, then the run's facts."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    r = facts.recipe
    # The test scores as the Hub reads them (model-index): shown on the model's page.
    results = [
        EvalResult(
            task_type=facts.pipeline_task or f"{facts.input_type}-classification",
            dataset_type=r.data.source,
            dataset_name=r.data.source,
            dataset_split="test",
            metric_type=metric,
            metric_value=round(value, 4),
        )
        for metric, value in facts.metrics.get("test", {}).items()
        if metric not in ("loss", "examples")
    ]
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag=facts.pipeline_task or None,  # none where transformers has no pipeline (time series)
        tags=["tlhub", f"tlhub-{r.tuning.strategy}", facts.input_type],
        base_model=facts.base if facts.base and is_hub_id(facts.base) and r.model.init == "pretrained" else None,
        model_name=name if results else None,
        eval_results=results or None,
    )
    table = ["| split | " + " | ".join(next(iter(facts.metrics.values()))) + " |"]
    table.append("|---" * (1 + len(next(iter(facts.metrics.values())))) + "|")
    for split, scores in facts.metrics.items():
        table.append(
            f"| {split} | " + " | ".join(f"{v:.4f}" if k != "examples" else str(v) for k, v in scores.items()) + " |"
        )
    history = [
        f"| epoch | train loss | validation {r.eval.select_metric} | training time (s) | training samples/s |",
        "|---|---|---|---|---|",
    ]
    for h in facts.history:
        timed = f"{h['train_seconds']:.1f} | {h['train_samples_per_second']:.0f}" if "train_seconds" in h else "- | -"
        history.append(
            f"| {h['epoch']} | {h['train_loss']:.4f} | {h['validation_' + r.eval.select_metric]:.4f} | {timed} |"
        )
    how = (
        f"fine-tuned by tlhub with the `{r.tuning.strategy}` strategy"
        if facts.base and r.model.init == "pretrained"
        else "trained from scratch by tlhub (every layer starts from random values)"
    )
    picked = (
        f"Best epoch {facts.best_epoch} of {r.train.epochs}, picked on validation {r.eval.select_metric}."
        if r.eval.select_split == "validation"
        else f"The last epoch ({facts.best_epoch}) is kept (eval.select_split: none)."
    )
    if facts.stopped_early:
        picked += f" Training stopped early, {facts.stopped_early}."
    files = f" with data_files `{r.data.data_files}`" if r.data.data_files else ""
    origin = f", loaded from {facts.base_origin}" if facts.base_origin else ""
    opt_ins = "".join(f"\n- {line}" for line in _loading_opt_ins(r))
    random_init = (
        "\n- model.init: random: only the checkpoint's architecture and preprocessing are used, not its values"
        if r.model.init == "random"
        else ""
    )
    made_with = ", ".join(
        f"{name} {v}" if name != "plugin" else f"the plugin {v}" for name, v in facts.versions.items() if v
    )
    bullets = lambda items: "\n".join(f"- {i}" for i in items) or "- none"  # noqa: E731
    body = f"""
# {name}

A {facts.model_type} {facts.input_type} classifier for {len(facts.labels)} classes, {how}.

## Base checkpoint
- checkpoint: `{facts.base or "none (trained from scratch)"}`{origin}
- input type: {facts.input_type} (model_type `{facts.model_type}`)
- pretraining: {facts.base_provenance}{opt_ins}{random_init}

## Data
- source: `{r.data.source}`{files}
- columns: input `{r.data.input_column}`, label `{r.data.label_column}`
- labels (id: name): {", ".join(f"{i}: {n}" for i, n in enumerate(facts.labels))}
{bullets(facts.data_notes)}

Adapted by preprocessing:
{bullets(facts.adaptations)}

## Head surgery
{bullets(facts.surgery)}

Trainable parameters: {facts.trainable:,} of {facts.total:,} ({100 * facts.trainable / facts.total:.2f}%).

## Training
- {_schedule(r)}{_wall_time(facts)}
- plugin options the recipe set (`model.options`; augmentation under `augment` applies to training batches
  only): {f"`{json.dumps(facts.plugin_options)}`" if facts.plugin_options else "none (the plugin's defaults)"}

## Results
{picked}

{chr(10).join(table)}

{chr(10).join(history)}

![Training loss, validation {r.eval.select_metric} and learning rate](curves.png)

The test split's confusion matrix (rows: true class, columns: predicted); `eval/test/` also holds
the per-class scores (`per_class.csv`) and the most confident mistakes (`mistakes.csv`):

![Confusion matrix of the test split](eval/test/confusion_matrix.png)

## Reproduce
```
{facts.command}
```
The fully resolved recipe is in `recipe.yaml`. Made with {made_with}.
"""
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))
