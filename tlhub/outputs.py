"""The run directory: guarding it, and writing what a finished run leaves behind.

A finished run directory is a Hugging Face model folder (``config.json``, ``model.safetensors``, the
processor's config) plus ``metrics.json``, ``recipe.yaml``, ``run.json`` and a ``README.md`` model card;
a LoRA run also holds its adapter in ``adapter/``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import ModelCard, ModelCardData

from tlhub.checkpoint import is_hub_id
from tlhub.engine import BEST_MODEL, CHECKPOINTS, latest_checkpoint
from tlhub.errors import OutputDirError

if TYPE_CHECKING:
    from tlhub.recipe import Recipe

RUN_FILE = "run.json"  # written when a run starts: marks the directory as a tlhub run
ADAPTER_DIR = "adapter"


def check_output_dir(path: Path, resume: bool, overwrite: bool, recipe: dict[str, Any]) -> str:
    """Decide what to do with ``output_dir`` before anything is written: ``fresh``, ``resume`` or ``replace``.

    A non-empty directory is never overwritten silently: it takes ``--overwrite``, or ``--resume`` for
    an interrupted run of the same recipe.
    """
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return "fresh"
    if not path.is_dir():
        raise OutputDirError(f"output_dir: '{path}' is a file, not a directory")
    if overwrite:
        return "replace"
    run_file = path / RUN_FILE
    info = json.loads(run_file.read_text()) if run_file.is_file() else None
    advice = f"pass --overwrite to replace it, or choose another output_dir (e.g. output_dir={path}-2)"
    if info is None:
        raise OutputDirError(f"output_dir: '{path}' is not empty and holds no tlhub run; {advice}")
    if not resume:
        if info.get("finished"):
            raise OutputDirError(f"output_dir: '{path}' holds a finished run of {info.get('recipe_file')}; {advice}")
        raise OutputDirError(
            f"output_dir: '{path}' holds an interrupted run of {info.get('recipe_file')}: pass --resume to "
            f"continue it, or {advice}"
        )
    if info.get("finished"):
        raise OutputDirError(f"output_dir: '{path}' holds a finished run; nothing to resume; {advice}")
    changed = _changed_keys(info.get("recipe", {}), recipe)
    if changed:
        raise OutputDirError(
            f"output_dir: '{path}' holds a run of a different recipe (differs at: {', '.join(changed)}); "
            f"resume with the same recipe and overrides, or {advice}"
        )
    return "resume" if latest_checkpoint(path) is not None else "replace"


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def start_run_dir(path: Path, decision: str, info: dict[str, Any]) -> None:
    """Create (or clear, for ``replace``) the run directory and write ``run.json``."""
    if decision == "replace" and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    if decision != "resume":
        (path / RUN_FILE).write_text(json.dumps(info, indent=2))


def finish_run_dir(path: Path, updates: dict[str, Any]) -> None:
    """Mark the run finished in ``run.json`` and drop the resumable checkpoints."""
    run_file = path / RUN_FILE
    info = json.loads(run_file.read_text())
    info.update(updates, finished=True)
    run_file.write_text(json.dumps(info, indent=2))
    shutil.rmtree(path / CHECKPOINTS, ignore_errors=True)
    shutil.rmtree(path / BEST_MODEL, ignore_errors=True)


def save_model_folder(path: Path, model: Any, processor: Any) -> None:
    """A Hugging Face model folder (weights, config with the label map, processor).

    A peft model also leaves its adapter (with the trained head) in ``adapter/``, then is merged so that
    the folder itself loads with plain transformers.
    """
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model.save_pretrained(str(path / ADAPTER_DIR))
        processor.save_pretrained(path / ADAPTER_DIR)
        model = model.merge_and_unload()
    model.save_pretrained(path)
    processor.save_pretrained(path)


def base_provenance(checkpoint: str | None) -> str:
    """What a base checkpoint was pretrained on, as its own run records it (tlhub runs) or its card says."""
    if checkpoint is None:
        return "none: trained from scratch"
    folder = Path(checkpoint)
    run_file = folder / RUN_FILE
    if run_file.is_file():
        info = json.loads(run_file.read_text())
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


def write_model_card(path: Path, facts: CardFacts) -> None:
    """``README.md``: a Hugging Face model card with metadata and the run's facts."""
    r = facts.recipe
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag=facts.pipeline_task,
        tags=["tlhub", f"tlhub-{r.tuning.strategy}", facts.input_type],
        base_model=facts.base if facts.base and is_hub_id(facts.base) else None,
    )
    table = ["| split | " + " | ".join(next(iter(facts.metrics.values()))) + " |"]
    table.append("|---" * (1 + len(next(iter(facts.metrics.values())))) + "|")
    for split, scores in facts.metrics.items():
        table.append(
            f"| {split} | " + " | ".join(f"{v:.4f}" if k != "examples" else str(v) for k, v in scores.items()) + " |"
        )
    history = ["| epoch | train loss | validation " + r.eval.select_metric + " |", "|---|---|---|"]
    for h in facts.history:
        history.append(f"| {h['epoch']} | {h['train_loss']:.4f} | {h['validation_' + r.eval.select_metric]:.4f} |")
    how = (
        f"fine-tuned by tlhub with the `{r.tuning.strategy}` strategy"
        if facts.base
        else "trained from scratch by tlhub (supervised pretraining: every layer starts from random values)"
    )
    picked = (
        f"Best epoch {facts.best_epoch} of {r.train.epochs}, picked on validation {r.eval.select_metric}."
        if r.eval.select_split == "validation"
        else f"The last epoch ({facts.best_epoch}) is kept (eval.select_split: none)."
    )
    files = f" with data_files `{r.data.data_files}`" if r.data.data_files else ""
    origin = f", loaded from {facts.base_origin}" if facts.base_origin else ""
    bullets = lambda items: "\n".join(f"- {i}" for i in items) or "- none"  # noqa: E731
    body = f"""
# {path.name}

A {facts.model_type} {facts.input_type} classifier for {len(facts.labels)} classes, {how}.

## Base checkpoint
- checkpoint: `{facts.base or "none (trained from scratch)"}`{origin}
- input type: {facts.input_type} (model_type `{facts.model_type}`)
- pretraining: {facts.base_provenance}

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

## Results
{picked}

{chr(10).join(table)}

{chr(10).join(history)}

## Reproduce
```
{facts.command}
```
The fully resolved recipe is in `recipe.yaml`.
"""
    ModelCard(f"---\n{data.to_yaml()}\n---\n{body}").save(path / "README.md")
