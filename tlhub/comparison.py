"""``tlhub compare``: which tuning strategy for this data? One recipe run once per cell of a grid.

The grid is strategy x labelled examples per class x seed (the recipe's ``compare`` section, or the
command's flags). Every deep cell is an ordinary run of the recipe with a few overrides, in its own run
directory under ``<folder>/cells/`` (so ``tlhub predict`` and ``tlhub eval`` take it); the ``baseline``
cell fits the plugin's classical model on the same examples. Every cell sees the same validation and test
splits (carved by ``data.split_seed`` before any subset is drawn), and the subsets are drawn once, with
``data.split_seed``, and nested (``tlhub.data`` keeps a prefix of one seeded order per class).

``cells.json`` records each finished cell as it finishes; a compare started again skips them, resumes an
interrupted cell from its last checkpoint, and writes the summary (``compare.md``, ``compare.csv``,
``compare.png``: :mod:`tlhub.compare_report`) once every cell is done.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlhub.compare_report import BASELINE, CellResult, csv_text, markdown, plot, summarize, verdict
from tlhub.errors import Interrupted, OutputDirError, RecipeError

if TYPE_CHECKING:
    from tlhub.plan import Plan
    from tlhub.recipe import CompareSection, Recipe, TrainSection

# The built-in strategies as recipe overrides; `unfreeze` gets its head epochs per cell (a third of them).
_PRESETS: dict[str, dict[str, Any]] = {
    "scratch": {"model.init": "random", "tuning.strategy": "full"},
    "head": {"tuning.strategy": "head"},
    "lora": {"tuning.strategy": "lora"},
    "full": {"tuning.strategy": "full"},
    "unfreeze": {"tuning.strategy": "full"},
}


@dataclass(frozen=True)
class Cell:
    """One cell of the grid."""

    strategy: str
    per_class: int | None  # None: the whole training split
    seed: int

    @property
    def name(self) -> str:
        size = "all" if self.per_class is None else f"n{self.per_class}"
        return f"{self.strategy}-{size}-seed{self.seed}"


@dataclass
class CompareResult:
    """What :func:`compare` returns: every cell's result, the summary's files, and the verdict."""

    cells: list[CellResult]
    folder: Path
    table: str
    verdict: str


def grid(section: CompareSection) -> list[Cell]:
    """The cells in the order they run: smallest subsets first (their results come soonest), then by
    strategy and seed."""
    sizes = sorted(section.samples_per_class, key=lambda k: math.inf if k is None else k)
    return [Cell(s, k, seed) for k in sizes for s in section.strategies for seed in section.seeds]


def compare(
    recipe: str | Path,
    overrides: list[str] | None = None,
    *,
    grid_options: dict[str, Any] | None = None,
    output: str | Path | None = None,
    progress: bool = True,
) -> CompareResult:
    """Run ``recipe``'s grid (its ``compare`` section, updated by ``grid_options``: any of its keys) and
    summarise it; cells already finished in the folder are not run again."""
    from tlhub import plugins
    from tlhub.recipe import CompareSection, apply_overrides, parse_overrides, read_yaml, validate_recipe

    registry = plugins.registry()
    given = parse_overrides(overrides or [])
    data = apply_overrides(read_yaml(recipe), given)
    # every cell's run applies the command's overrides again, then its own; the grid's are not the cells'
    given = {k: v for k, v in given.items() if k != "compare" and not k.startswith("compare.")}
    base = validate_recipe(data, source=str(recipe), plugins=set(registry.modalities))
    section = _section(base.compare or CompareSection(), grid_options or {}, str(recipe))
    folder = Path(output or section.output_dir or f"{base.output_dir.rstrip('/')}-compare")
    modality = plugins.resolve_modality(base.model.plugin, registry)
    if BASELINE in section.strategies and modality.baseline is None:
        raise RecipeError(
            [f"compare.strategies: plugin '{modality.name}' offers no classical baseline; leave out '{BASELINE}'"],
            source=str(recipe),
        )
    cells = grid(section)
    for cell in cells:  # every strategy's recipe is valid before the first cell starts
        if cell.strategy != BASELINE:
            _cell_recipe(data, section, cell, folder, _cell_epochs(section, cell, base), str(recipe))
    _claim(folder, base, str(recipe))

    recorded = _read_results(folder)  # name -> (what the cell ran, its result)
    plans: dict[int | None, Plan] = {}  # one plan per subset size: its train split's length, the baseline's data
    from tqdm.auto import tqdm

    bar = tqdm(total=len(cells), desc="compare", unit="cell", file=sys.stderr, disable=not progress)
    results: dict[str, CellResult] = {}
    try:
        for cell in cells:
            bar.set_postfix_str(cell.name)
            what = _what(cell, data, given, base, section, folder, plans, str(recipe))
            if cell.name in recorded and recorded[cell.name][0] == what:
                results[cell.name] = recorded[cell.name][1]
            else:  # not run yet, or run with other settings (the grid's overrides changed): run it
                results[cell.name] = _run_cell(cell, what, folder, plans, str(recipe))
                recorded[cell.name] = (what, results[cell.name])
                _write_results(folder, recorded)
            bar.update()
    except (KeyboardInterrupt, Interrupted):  # Ctrl-C between cells, or a cell's run interrupted
        raise Interrupted(
            f"interrupted: the compare in '{folder}' stopped; run the same command again to go on (its "
            f"{sum(c.name in results for c in cells)} finished cells are kept)"
        ) from None
    finally:
        bar.close()
    return _summarise(folder, base, [results[c.name] for c in cells], plans)


def _section(section: CompareSection, options: dict[str, Any], source: str) -> CompareSection:
    from pydantic import ValidationError

    from tlhub.recipe import CompareSection, format_errors

    given = {k: v for k, v in options.items() if v is not None}
    try:
        return CompareSection.model_validate({**section.model_dump(), **given})
    except ValidationError as exc:
        raise RecipeError(format_errors(exc, CompareSection, prefix="compare."), source=source) from None


def _cell_epochs(section: CompareSection, cell: Cell, base: Recipe) -> int:
    """The epochs a cell's strategy overrides set, else the grid's overrides, else the recipe's."""
    for overrides in (section.strategy_overrides.get(cell.strategy, {}), section.overrides):
        value = overrides.get("train.epochs")
        if isinstance(value, int) and not isinstance(value, bool):
            return value  # anything else is reported by the cell recipe's validation
    return base.train.epochs


def _strategy_overrides(section: CompareSection, cell: Cell, epochs: int) -> dict[str, Any]:
    preset = dict(_PRESETS.get(cell.strategy, {}))
    if cell.strategy == "unfreeze":
        preset["tuning.full.unfreeze"] = {"head_epochs": max(1, epochs // 3)}
    return {**preset, **section.strategy_overrides.get(cell.strategy, {})}


def _cell_recipe(
    data: dict[str, Any], section: CompareSection, cell: Cell, folder: Path, epochs: int, source: str
) -> tuple[Recipe, dict[str, Any]]:
    """The recipe of a deep cell, validated, and the overrides that make it from the compared recipe."""
    from tlhub.recipe import apply_overrides, validate_recipe

    overrides = {
        **section.overrides,
        **_strategy_overrides(section, cell, epochs),
        "data.train_samples_per_class": cell.per_class,
        "train.seed": cell.seed,
        "train.epochs": epochs,
        "output_dir": str(folder / "cells" / cell.name),
        "compare": None,  # a cell is a plain run: changing the grid does not change its recipe
    }
    try:
        recipe = validate_recipe(apply_overrides(copy.deepcopy(data), overrides), source=source)
    except RecipeError as exc:
        raise RecipeError([f"compare strategy '{cell.strategy}': {p}" for p in exc.problems], source=source) from None
    return recipe, overrides


def _claim(folder: Path, base: Recipe, source: str) -> None:
    """The folder holds this recipe's compare, or nothing yet: ``compare.json`` says which recipe it is."""
    from tlhub.rundir import check_location, replace_file

    if problems := check_location(str(folder), recipe_file=source, checkpoint=base.model.checkpoint):
        raise OutputDirError("; ".join(p.replace("output_dir", "compare.output_dir", 1) for p in problems))
    compared = base.model_dump(mode="json", exclude={"compare", "output_dir"})
    record = folder / "compare.json"
    if record.exists():
        try:
            found = json.loads(record.read_text())["recipe"]
        except (OSError, ValueError, KeyError, TypeError):
            raise OutputDirError(
                f"compare.output_dir: '{record}' is unreadable; remove it or choose another folder"
            ) from None
        if found != compared:
            raise OutputDirError(
                f"compare.output_dir: '{folder}' holds a compare of another recipe (or other overrides); choose "
                "another folder (--output), or remove that one"
            )
        return
    if folder.exists() and any(folder.iterdir()):
        raise OutputDirError(f"compare.output_dir: '{folder}' is not empty and holds no compare; choose another")
    folder.mkdir(parents=True, exist_ok=True)
    replace_file(record, json.dumps({"recipe_file": source, "recipe": compared}, indent=2))


def _read_results(folder: Path) -> dict[str, tuple[dict[str, Any], CellResult]]:
    """``cells.json``: for each finished cell, what it ran (its overrides) and its result."""
    path = folder / "cells.json"
    if not path.exists():
        return {}
    try:
        found = json.loads(path.read_text())
        return {name: (cell["ran"], CellResult(**cell["result"])) for name, cell in found.items()}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise OutputDirError(
            f"compare.output_dir: '{path}' is unreadable ({type(exc).__name__}: {exc}); remove it to run every "
            "cell again"
        ) from None


def _write_results(folder: Path, recorded: dict[str, tuple[dict[str, Any], CellResult]]) -> None:
    from tlhub.rundir import replace_file

    cells = {name: {"ran": what, "result": asdict(result)} for name, (what, result) in recorded.items()}
    replace_file(folder / "cells.json", json.dumps(cells, indent=1))


def _size_plan(data: dict[str, Any], cell: Cell, folder: Path, plans: dict[int | None, Plan], source: str) -> Plan:
    """The plan of the compared recipe at the cell's subset size (made once per size)."""
    from tlhub.plan import make_plan
    from tlhub.recipe import apply_overrides, validate_recipe

    if cell.per_class not in plans:
        overrides = {
            "data.train_samples_per_class": cell.per_class,
            "output_dir": str(folder / "cells" / "plan"),
            "compare": None,
        }
        recipe = validate_recipe(apply_overrides(copy.deepcopy(data), overrides), source=source)
        plans[cell.per_class] = make_plan(recipe)
    return plans[cell.per_class]


def _epochs(plan: Plan, train: TrainSection, min_steps: int) -> int:
    """``train.epochs``, or more when they would train fewer than ``min_steps`` optimizer steps."""
    steps = math.ceil(math.ceil(len(plan.splits.train) / train.batch_size) / train.gradient_accumulation_steps)
    return max(train.epochs, math.ceil(min_steps / steps))


def _what(
    cell: Cell,
    data: dict[str, Any],
    given: dict[str, Any],
    base: Recipe,
    section: CompareSection,
    folder: Path,
    plans: dict[int | None, Plan],
    source: str,
) -> dict[str, Any]:
    """What a cell runs, as JSON data: a deep cell's recipe overrides (the command's, then the cell's; its
    epochs raised to ``compare.min_steps``), or the baseline's subset and seed."""
    if cell.strategy == BASELINE:
        _size_plan(data, cell, folder, plans, source)  # the baseline's data (made once per size)
        what: dict[str, Any] = {**given, "baseline": True, "per_class": cell.per_class, "seed": cell.seed}
    else:
        epochs = _cell_epochs(section, cell, base)
        recipe, overrides = _cell_recipe(data, section, cell, folder, epochs, source)
        if section.min_steps:
            plan = _size_plan(data, cell, folder, plans, source)
            if (more := _epochs(plan, recipe.train, section.min_steps)) != epochs:
                _, overrides = _cell_recipe(data, section, cell, folder, more, source)
        # the base's weights too: a grid started again on a retrained base reruns its deep cells
        what = {**given, **overrides, "base_fingerprint": _base_fingerprint(recipe.model.checkpoint)}
    return json.loads(json.dumps(what))  # as cells.json gives it back


def _base_fingerprint(checkpoint: str | None) -> str | None:
    """The hash of the checkpoint folder a cell starts from, as its run records it (``None``: built from config
    or a Hub id with no local copy)."""
    from tlhub.checkpoint import fingerprint, resolve_checkpoint

    return fingerprint(str(resolve_checkpoint(checkpoint).location)) if checkpoint else None


def _run_cell(cell: Cell, what: dict[str, Any], folder: Path, plans: dict[int | None, Plan], source: str) -> CellResult:
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    started = time.perf_counter()
    _reset_peak_memory()
    with open(logs / f"{cell.name}.log", "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        if cell.strategy == BASELINE:
            metrics, examples, trainable = _baseline(plans[cell.per_class], cell.seed)
        else:
            overrides = {k: v for k, v in what.items() if k != "base_fingerprint"}  # recorded, not a recipe key
            metrics, examples, trainable = _deep(source, overrides, folder / "cells" / cell.name)
    return CellResult(
        strategy=cell.strategy,
        per_class=cell.per_class,
        train_examples=examples,
        seed=cell.seed,
        metrics=metrics,
        trainable_parameters=trainable,
        wall_seconds=round(time.perf_counter() - started, 1),
        peak_memory_mb=_peak_memory_mb(),
    )


def _deep(source: str, overrides: dict[str, Any], path: Path) -> tuple[dict[str, float], int, int]:
    """Run one deep cell: skipped if its folder holds this recipe's finished run, resumed if it holds this
    recipe's interrupted one, run afresh otherwise (the cell's folder is the compare's own). Its test
    metrics, training examples and trainable parameters, from its ``run.json``."""
    from tlhub.recipe import load_recipe
    from tlhub.rundir import RunDir
    from tlhub.runner import run

    rundir = RunDir(path)
    record = rundir.read_record() if path.exists() else None
    recipe = load_recipe(source, overrides)
    same = (
        record is not None
        and record.get("recipe") == recipe.model_dump(mode="json")
        and record.get("base_fingerprint") == _base_fingerprint(recipe.model.checkpoint)
    )
    if not (same and record is not None and record.get("status") == "finished"):
        resume = same and rundir.checkpoints.latest() is not None
        command = f"tlhub compare {source} (cell {path.name})"
        run(source, overrides, resume=resume, overwrite=record is not None and not resume, command=command)
        record = rundir.read_record() or {}
    return record["metrics"]["test"], record["data"]["sizes"]["train"], record["trainable_parameters"]


def _baseline(plan: Plan, seed: int) -> tuple[dict[str, float], int, None]:
    """The plugin's classical model fitted on the plan's training split, scored on its test split."""
    from tlhub.baseline import fit_baseline
    from tlhub.engine import score_predictions
    from tlhub.metrics import load_metrics

    r, splits = plan.recipe, plan.splits
    predictions = fit_baseline(
        plan.modality,
        r.data.input_columns,
        plan.config,
        plan.processor,
        plan.options,
        seed,
        splits.train,
        splits.test,
        r.data.label_column,
        splits.labels,
    )
    metrics = score_predictions(predictions, load_metrics(r.eval.metrics), splits.labels)
    return metrics, len(splits.train), None


def _reset_peak_memory() -> None:
    """Start counting the peak memory afresh: the GPU's allocator, or the process's resident set (Linux
    resets its high-water mark when "5" is written to ``/proc/self/clear_refs``)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_memory_mb() -> float | None:
    """The peak since :func:`_reset_peak_memory`: GPU memory allocated, or the process's resident set."""
    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    line = next((line for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return round(int(line.split()[1]) / 1024, 1) if line else None


def _summarise(folder: Path, base: Recipe, cells: list[CellResult], plans: dict[int | None, Plan]) -> CompareResult:
    """Write the table (Markdown, CSV), the plot and the verdict; print the table and the verdict."""
    from tlhub.rundir import replace_file

    metrics = [m for m in base.eval.metrics if m != "f1_per_class"] + ["loss"]
    rows = summarize(cells, metrics)
    select = base.eval.select_metric
    table = markdown(rows, metrics, select)
    said = verdict(rows, select)
    classes = _classes(folder, cells, plans)
    title = f"{base.model.plugin}: {base.model.checkpoint or 'from scratch'} on {base.data.source}"
    replace_file(folder / "compare.md", f"# {title}\n\n{table}\n\n{said}\n")
    replace_file(folder / "compare.csv", csv_text(rows, metrics))
    replace_file(folder / "compare.png", plot(rows, select, title, classes=classes))
    print(f"{table}\n\n{said}\n\nwritten: {folder}/compare.md, compare.csv, compare.png")
    return CompareResult(cells=cells, folder=folder, table=table, verdict=said)


def _classes(folder: Path, cells: list[CellResult], plans: dict[int | None, Plan]) -> int:
    """The number of classes, from any plan made, else from a finished cell's ``run.json``."""
    for plan in plans.values():
        return len(plan.splits.labels)
    from tlhub.rundir import read_run_record

    for run_dir in sorted((folder / "cells").glob("*")):
        if (record := read_run_record(run_dir)) is not None:
            return len(record["data"]["labels"])
    return 2
