"""tlhub's own built-ins, registered through the same hooks a plugin package implements.

The plugin manager registers this module under the name ``tlhub`` before any entry point: the input types
``image``, ``audio`` and ``text``, the metrics ``accuracy``, ``f1`` and ``f1_per_class``, and the tuning
strategies ``head``, ``full`` and ``lora``. A third party adds its own beside them with the same hooks
(``docs/plugins.md``).
"""

from __future__ import annotations

from collections.abc import Callable

from tlhub.hookspecs import hookimpl
from tlhub.input_types import InputType
from tlhub.metrics import BUILTIN, Metric
from tlhub.tuning import STRATEGIES, Strategy, full_schedule


@hookimpl
def register_input_types(register: Callable[[InputType], None]) -> None:
    register(
        InputType(
            name="image",
            description="pictures: a datasets Image column",
            features=("Image",),
            main_inputs=("pixel_values",),
            plural="images",
        )
    )
    register(
        InputType(
            name="audio",
            description="sound: a datasets Audio column",
            features=("Audio",),
            main_inputs=("input_values", "input_features"),
        )
    )
    register(
        InputType(
            name="text",
            description="strings: a datasets Value('string') column",
            features=("Value(string)", "Value(large_string)"),
            main_inputs=("input_ids",),
        )
    )


@hookimpl
def register_metrics(register: Callable[[Metric], None]) -> None:
    descriptions = {
        "accuracy": "share of examples whose predicted class is right",
        "f1": "macro F1: the mean of each class's F1, every class weighing the same",
        "f1_per_class": "F1 of each class on its own, as f1_<class name>",
    }
    for name, module in BUILTIN.items():
        register(Metric(name=name, module=str(module), description=descriptions[name]))


@hookimpl
def register_strategies(register: Callable[[Strategy], None]) -> None:
    descriptions = {
        "head": "only the new head trains: very small datasets",
        "full": "every layer trains from the pretrained values (gradual unfreezing, layer-wise decay): more data",
        "lora": "low-rank adapters (peft) on the plugin's target layers, the new head in full",
    }
    for name, module in STRATEGIES.items():
        register(
            Strategy(
                name=name,
                options=module.Options,
                apply=module.apply,
                check=module.check,
                schedule=full_schedule if name == "full" else None,
                description=descriptions[name],
            )
        )
