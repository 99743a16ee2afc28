"""tlhub: transfer learning on Hugging Face, from a YAML recipe, a plugin or Python.

>>> import tlhub
>>> result = tlhub.run("recipes/digits_vit.yaml", overrides={"train.epochs": 1})
>>> result.metrics["test"]["accuracy"], result.output_dir
"""

from __future__ import annotations

from tlhub.checkpoint import LocalCopy
from tlhub.hookspecs import hookimpl
from tlhub.modality import Modality
from tlhub.recipe import Recipe, load_recipe
from tlhub.sources import Source

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # run/plan_run pull in torch and accelerate; import them on first use so that `import tlhub`
    # (which every plugin does) and `tlhub plugins` stay light.
    if name in ("run", "plan_run", "RunResult", "Plan"):
        from tlhub import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'tlhub' has no attribute {name!r}")


__all__ = [
    "LocalCopy",
    "Modality",
    "Plan",
    "Recipe",
    "RunResult",
    "Source",
    "__version__",
    "hookimpl",
    "load_recipe",
    "plan_run",
    "run",
]
