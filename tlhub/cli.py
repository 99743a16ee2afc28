"""The ``tlhub`` command: ``run``, ``validate``, ``plugins`` and ``schema``.

Bad input (any ``TlhubError``) prints one message and exits with code 2, without a traceback; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from tlhub.errors import Interrupted, RecipeError, TlhubError


def _reports_errors(recipe_arg: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except Interrupted as exc:  # SIGINT / SIGTERM: say how to go on, with the shell's exit code
                click.echo(str(exc), err=True)
                sys.exit(130)
            except RecipeError as exc:
                where = f"{kwargs['recipe']}: " if recipe_arg and "recipe" in kwargs and exc.source is None else ""
                click.echo(f"error: {where}{exc}", err=True)
            except TlhubError as exc:
                where = f"{kwargs['recipe']}: " if recipe_arg and "recipe" in kwargs else ""
                click.echo(f"error: {where}{exc}", err=True)
            sys.exit(2)

        return wrapper

    return decorate


@click.group()
@click.version_option(package_name="tlhub")
def main() -> None:
    """Transfer learning on Hugging Face: fine-tune a pretrained model from a YAML recipe."""
    # tlhub prints its own account of loading (head surgery, adaptations); transformers' load report
    # and advice would repeat it. Set before any command imports transformers (nothing here does);
    # a user can still ask for them with TRANSFORMERS_VERBOSITY=info.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@main.command()
@click.argument("recipe")
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in output_dir from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace whatever output_dir holds.")
@_reports_errors()
def run(recipe: str, overrides: tuple[str, ...], resume: bool, overwrite: bool) -> None:
    """Fine-tune (or pretrain) as RECIPE says, e.g. `tlhub run recipes/digits_vit.yaml train.epochs=1`."""
    from tlhub.runner import run as run_recipe

    flags = ["--resume"] * resume + ["--overwrite"] * overwrite
    command = shlex.join(["tlhub", "run", recipe, *overrides, *flags])
    # `kill` stops a run like Ctrl-C: cleanly, with how to resume; the caller's handler comes back after.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        run_recipe(recipe, list(overrides), resume=resume, overwrite=overwrite, command=command)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _list_of(convert: Callable[[str], Any]) -> Callable[[Any, Any, str | None], list[Any] | None]:
    def parse(ctx: Any, param: Any, value: str | None) -> list[Any] | None:
        if value is None:
            return None
        try:
            return [convert(item.strip()) for item in value.split(",")]
        except ValueError:
            raise click.BadParameter(f"'{value}' is not a comma-separated list of the right values") from None

    return parse


def _size(item: str) -> int | None:
    return None if item == "all" else int(item)


@main.command()
@click.argument("recipe")
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--strategies", callback=_list_of(str), help="e.g. baseline,scratch,head,lora,full,unfreeze")
@click.option("--sizes", callback=_list_of(_size), help="Labelled examples per class, e.g. 2,10,50,all.")
@click.option("--seeds", callback=_list_of(int), help="e.g. 0,1,2")
@click.option("--min-steps", type=int, default=None, help="Train each cell at least this many optimizer steps.")
@click.option("--output", default=None, help="Folder of the grid (default: the recipe's output_dir + '-compare').")
@_reports_errors()
def compare(
    recipe: str,
    overrides: tuple[str, ...],
    strategies: list[str] | None,
    sizes: list[int | None] | None,
    seeds: list[int] | None,
    min_steps: int | None,
    output: str | None,
) -> None:
    """Which strategy for this data? Run RECIPE per strategy x training-set size x seed, and summarise.

    The grid comes from the recipe's `compare` section, changed by the flags. Started again, it skips
    finished cells and resumes an interrupted one. Writes compare.md, compare.csv and compare.png.
    """
    from tlhub.comparison import compare as run_compare

    options = {"strategies": strategies, "samples_per_class": sizes, "seeds": seeds, "min_steps": min_steps}
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        run_compare(recipe, list(overrides), grid_options=options, output=output)
    finally:
        signal.signal(signal.SIGTERM, previous)


@main.command()
@click.argument("recipe")
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@_reports_errors()
def validate(recipe: str, overrides: tuple[str, ...]) -> None:
    """Check everything about RECIPE short of training: schema, plugin and its options, checkpoint config and
    preprocessing, input types, strategy, and the data (loaded, split and scanned by the plugin)."""
    from tlhub.plan import make_plan

    plan = make_plan(recipe, list(overrides))
    r = plan.recipe
    sizes = ", ".join(f"{role} {len(split)}" for role, split in plan.splits.items())
    click.echo(
        f"{recipe}: ok: plugin '{plan.modality.name}' ({plan.modality.input_type}), "
        f"{'checkpoint ' + str(plan.checkpoint) if plan.checkpoint else 'from scratch'} "
        f"[{plan.config.model_type}], data '{r.data.source}' column '{r.data.input_column}' "
        f"({len(plan.splits.labels)} classes; {sizes}), "
        f"strategy {r.tuning.strategy}, {r.train.epochs} epoch(s) -> {r.output_dir}"
    )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_reports_errors(recipe_arg=False)
def plugins(as_json: bool) -> None:
    """Show the installed plugins, where they come from and which hooks each implements."""
    from tlhub.plugins import plugin_infos

    infos = plugin_infos()
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(i) for i in infos], indent=2))
        return
    for i in infos:
        origin = f"{i.distribution} {i.version}" if i.distribution else "not installed from a distribution"
        if i.error:
            click.echo(f"{i.name} ({origin}): FAILED TO LOAD: {i.error}")
            continue
        click.echo(f"{i.name} ({origin})")
        click.echo(f"  hooks: {', '.join(i.hooks)}")
        kinds = (
            ("input type", i.input_types),
            ("modality", i.modalities),
            ("source", i.sources),
            ("metric", i.metrics),
            ("strategy", i.strategies),
            ("tracker", i.trackers),
        )
        for kind, names in kinds:
            for name in names:
                click.echo(f"  {kind} {name}: {i.described.get(name) or 'no description'}")


@main.command()
@click.option("--markdown", is_flag=True, help="Print the recipe reference (docs/recipes.md) instead.")
@_reports_errors(recipe_arg=False)
def schema(markdown: bool) -> None:
    """Print the JSON Schema of a recipe (editors validate YAML with it)."""
    from tlhub.reference import recipe_json_schema, recipe_reference

    if markdown:
        click.echo(recipe_reference(), nl=False)  # it ends with its own newline: the file equals the text
        return
    click.echo(json.dumps(recipe_json_schema(), indent=2))


@main.command()
@click.argument("run_dir")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--column",
    help="For table files (csv, tsv, json, jsonl, parquet): the column(s) holding the inputs, "
    "comma-separated for sentence pairs. Default: the run's input column.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the predictions to a .csv or .jsonl file.")
@click.option("--top-k", default=1, show_default=True, type=click.IntRange(min=1), help="Classes listed per input.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--on-error",
    type=click.Choice(["fail", "skip"]),
    default="fail",
    show_default=True,
    help="An input that cannot be read: stop naming it, or skip it and say so.",
)
@_reports_errors(recipe_arg=False)
def predict(
    run_dir: str,
    inputs: tuple[str, ...],
    column: str | None,
    output: str | None,
    top_k: int,
    batch_size: int,
    on_error: str,
) -> None:
    """Predict with a finished run: INPUTS are files, folders (searched recursively), globs, text files (one
    input per line, for text models) or table files with --column."""
    _quiet_loading()
    from tlhub.inference import load
    from tlhub.predict_io import gather_inputs, write_predictions

    if output is not None and not output.lower().endswith((".csv", ".jsonl")):
        raise RecipeError([f"--output: '{output}' must end in .csv or .jsonl"])
    trained = load(run_dir)
    values, described = gather_inputs(list(inputs), trained, column)
    skipped: list[str] = []
    predictions = trained.predict(
        values,
        top_k=top_k,
        batch_size=batch_size,
        on_error=on_error,
        descriptions=described,
        progress=True,
        skipped=skipped,
    )
    for problem in skipped:
        click.echo(f"skipped: {problem}", err=True)
    if skipped:
        click.echo(f"skipped {len(skipped)} input(s) that could not be read (--on-error skip)", err=True)
    if output is not None:
        write_predictions(predictions, output)
        click.echo(f"{len(predictions)} prediction(s) -> {output}", err=True)
        return
    for line in _table(predictions):
        click.echo(line)


def _quiet_loading() -> None:
    """No progress bars of Hugging Face libraries (loading weights, reading a few files): tlhub shows its own."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


def _table(predictions: list[Any]) -> list[str]:
    width = min(60, max([len("input"), *(len(p.input) for p in predictions)]))
    lines = [f"{'input':<{width}}  {'label':<12}  score  top-k"]
    for p in predictions:
        shown = p.input if len(p.input) <= width else "..." + p.input[-(width - 3) :]
        shown = shown.replace("\n", " ")
        others = ", ".join(f"{label} {score:.3f}" for label, score in p.top_k[1:])
        lines.append(f"{shown:<{width}}  {p.label:<12}  {p.score:.3f}  {others}".rstrip())
    return lines


@main.command(name="eval")
@click.argument("run_dir")
@click.option(
    "--data",
    help="Labelled data: a folder of class-named subfolders (images, audio) or a csv, tsv, json, "
    "jsonl or parquet file. Default: the run's own data, split as in the run.",
)
@click.option("--recipe", help="Use this recipe's data section (and its split carving) instead.")
@click.option(
    "--split",
    help="A split of --data (default: its only split, or test), or a role (train, validation, "
    "test) of the run's or --recipe's data (default: test).",
)
@click.option("--input-column", help="The input column(s) of --data, comma-separated for pairs (default: the run's).")
@click.option("--label-column", help="The label column of --data (default: label for folders, else the run's).")
@click.option("--output", "-o", type=click.Path(file_okay=False), help="Report folder (default: RUN_DIR/eval/NAME).")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--mistakes",
    default=20,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many of the most confident mistakes to list.",
)
@_reports_errors(recipe_arg=False)
def evaluate(
    run_dir: str,
    data: str | None,
    recipe: str | None,
    split: str | None,
    input_column: str | None,
    label_column: str | None,
    output: str | None,
    batch_size: int,
    mistakes: int,
) -> None:
    """Score a finished run on labelled data: metrics, per-class scores, a confusion matrix (PNG) and the
    most confident mistakes, written to a report folder. Labels are matched to the model's by name."""
    from pathlib import Path

    _quiet_loading()
    from tlhub.errors import OutputDirError
    from tlhub.inference import evaluate as evaluate_model
    from tlhub.inference import labelled_data, load

    if data and recipe:
        raise RecipeError(["--data and --recipe: give one of them (or neither, for the run's own data)"])
    trained = load(run_dir)
    examples, label, name = labelled_data(trained, data, recipe, split, input_column, label_column)
    title = f"{Path(run_dir).name} on {name} ({len(examples)} examples)"
    report = evaluate_model(trained, examples, label, title, batch_size=batch_size, mistakes=mistakes)
    folder = Path(output) if output else Path(run_dir) / "eval" / name
    try:
        report.write(folder)
    except OSError as exc:
        raise OutputDirError(f"--output: cannot write the report into '{folder}' ({exc.strerror})") from None
    click.echo("  ".join(f"{k} {v:.4f}" if k != "examples" else f"examples {v}" for k, v in report.metrics.items()))
    click.echo(f"report: {folder}/ (metrics.json, per_class.csv, confusion_matrix.png, mistakes.csv)")
