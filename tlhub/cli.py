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
        for kind, names in (("modality", i.modalities), ("source", i.sources)):
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
