"""tlhub: transfer learning on Hugging Face, from a YAML recipe, a plugin or Python.

>>> import tlhub
>>> result = tlhub.run("recipes/digits_vit.yaml", overrides={"train.epochs": 1})
>>> result.metrics["test"]["accuracy"], result.output_dir
>>> tlhub.load(result.output_dir).predict(["digit.png"])[0].label
>>> tlhub.compare("recipes/digits_vit.yaml", grid_options={"seeds": [0]}).verdict

Importing tlhub imports no torch, transformers, datasets, peft or accelerate: every plugin imports
tlhub, and ``tlhub --help`` or ``tlhub plugins`` must stay fast. They load where they are used.
"""

from __future__ import annotations

from tlhub.checkpoint import LocalCopy
from tlhub.comparison import CompareResult, compare
from tlhub.errors import (
    CheckpointError,
    DataError,
    InputTypeError,
    OutputDirError,
    PluginError,
    RecipeError,
    TlhubError,
)
from tlhub.hookspecs import hookimpl
from tlhub.inference import Prediction, TrainedModel, load
from tlhub.input_types import InputType
from tlhub.metrics import Metric
from tlhub.modality import INDEX_COLUMN, Modality
from tlhub.plan import Plan, make_plan
from tlhub.recipe import Recipe, load_recipe
from tlhub.runner import RunResult, plan_run, run
from tlhub.sources import Source
from tlhub.trackers import Tracker
from tlhub.tuning import Schedule, Strategy, StrategyOptions

__version__ = "0.1.0"

__all__ = [
    "INDEX_COLUMN",
    "CheckpointError",
    "CompareResult",
    "DataError",
    "InputType",
    "InputTypeError",
    "LocalCopy",
    "Metric",
    "Modality",
    "OutputDirError",
    "Plan",
    "PluginError",
    "Prediction",
    "Recipe",
    "RecipeError",
    "RunResult",
    "Schedule",
    "Source",
    "Strategy",
    "StrategyOptions",
    "TlhubError",
    "Tracker",
    "TrainedModel",
    "__version__",
    "compare",
    "hookimpl",
    "load",
    "load_recipe",
    "make_plan",
    "plan_run",
    "run",
]
