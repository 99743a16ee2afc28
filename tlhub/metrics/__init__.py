"""Metrics: `evaluate` modules that plugins register by name, and how a run loads them.

``evaluate.load("accuracy")`` fetches a script from the Hub; ``evaluate.load(path)`` of a local module does
not. The built-in metrics are such modules, shipped here (``BUILTIN``) and registered by ``tlhub/builtins.py``
through the ``register_metrics`` hook, as a plugin package registers its own. Every module takes
``predictions`` and ``references`` (class ids) and ``label_names`` (class names in id order) at ``compute``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import evaluate

_HERE = Path(__file__).parent
BUILTIN: dict[str, Path] = {
    "accuracy": _HERE / "accuracy.py",
    "f1": _HERE / "f1.py",  # macro: every class weighs the same
    "f1_per_class": _HERE / "f1_per_class.py",  # f1_<label> for each class
}


@dataclass(frozen=True)
class Metric:
    """A metric a recipe can name in ``eval.metrics``.

    Attributes:
        name: the name recipes use (and the key of its score, unless the module returns several).
        module: an ``evaluate`` metric module: the path of a local module file (loads offline) or a name
            ``evaluate.load`` resolves. Its ``compute`` takes ``predictions``, ``references`` (class ids) and
            ``label_names`` (class names in id order) and returns scores where higher is better.
        description: one line for ``tlhub plugins``.
        plugin: set by tlhub: the plugin that registered it.
    """

    name: str
    module: str
    description: str = ""
    plugin: str = ""


def problems(item: object) -> list[str]:
    """Why a registered object is not a usable :class:`Metric` (empty when it is)."""
    if not isinstance(item, Metric):
        return [f"registered {item!r}; expected a tlhub.Metric"]
    if not item.name or not item.module:
        return [f"metric {item.name!r}: both a name and an evaluate module are needed"]
    return []


def load_metrics(names: list[str], experiment_id: str = "tlhub") -> evaluate.CombinedEvaluations:
    """The named registered metrics combined into one, computed in memory (no cache files between processes)."""
    import evaluate

    from tlhub.plugins import metrics

    known = metrics()
    return evaluate.combine(
        [evaluate.load(known[n].module, keep_in_memory=True, experiment_id=experiment_id) for n in names]
    )
