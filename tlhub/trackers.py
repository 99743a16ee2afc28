"""Trackers that plugins add: where a run's configuration, training log and validation metrics go.

Accelerate reports a run to the experiment trackers it knows (TensorBoard, W&B, MLflow, ...), named in
``train.report_to``, and to any ``accelerate.tracking.GeneralTracker`` it is handed. A plugin registers such a
tracker under a name through the ``register_trackers`` hook; a recipe then names it in ``train.report_to``
like a built-in one. Accelerate calls it as it calls its own: ``store_init_configuration`` with the recipe
(flat, dotted keys) once, ``log`` with ``train/loss``, ``train/learning_rate`` every ``train.logging_steps``
optimizer steps and ``validation/<metric>`` every epoch, ``finish`` at the end, on the main process only
unless the tracker says otherwise (``main_process_only``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Tracker:
    """A tracker a recipe can name in ``train.report_to``.

    Attributes:
        name: the name recipes use.
        make: ``make(logging_dir) -> accelerate.tracking.GeneralTracker``: a new tracker for one run;
            ``logging_dir`` is the run directory's ``logs/`` folder (a string), for a tracker that writes files.
        description: one line for ``tlhub plugins``.
        plugin: set by tlhub: the plugin that registered it.
    """

    name: str
    make: Callable[[str], Any]
    description: str = ""
    plugin: str = ""


def problems(item: object) -> list[str]:
    """Why a registered object is not a usable :class:`Tracker` (empty when it is)."""
    if not isinstance(item, Tracker):
        return [f"registered {item!r}; expected a tlhub.Tracker"]
    if not item.name:
        return ["a tracker needs a name"]
    return [] if callable(item.make) else [f"tracker '{item.name}': make is {item.make!r}, not a function"]
