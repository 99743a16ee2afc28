"""Hook specifications: everything a tlhub plugin can implement.

A plugin is a module (or object) with functions marked ``@tlhub.hookimpl`` whose names match the specs
below. tlhub calls every hook with keyword arguments; a plugin may accept any subset of them. Specs only
ever gain arguments, so plugins written today keep working. See ``docs/plugins.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable

    from tlhub.checkpoint import LocalCopy
    from tlhub.input_types import InputType
    from tlhub.metrics import Metric
    from tlhub.modality import Modality
    from tlhub.sources import Source
    from tlhub.trackers import Tracker
    from tlhub.tuning import Strategy

hookspec = pluggy.HookspecMarker("tlhub")
hookimpl = pluggy.HookimplMarker("tlhub")


# --- Registration: called once, when plugins load -------------------------------------------------


@hookspec
def register_input_types(register: Callable[[InputType], None]) -> None:  # type: ignore[empty-body]
    """Register kinds of input (``tabular``, ``timeseries``...) that modalities can name as their input type.

    When: once, before modalities are registered (a modality's ``input_type`` must be registered).
    tlhub registers ``image``, ``audio`` and ``text`` through this same hook (``tlhub/input_types.py``).

    Arguments: ``register``, a callback taking one :class:`tlhub.InputType`: its name, a one-line
    description, the ``datasets`` feature types of a column of that kind (as text: ``"Image"``,
    ``"Value(string)"``, ``"List(Value(float32))"``) and the ``main_input_name`` of the transformers models
    that read it. The input-type check and its messages then work for it unchanged.

    Returns: nothing; every plugin's implementation is called.
    """


@hookspec
def register_modalities(register: Callable[[Modality], None]) -> None:  # type: ignore[empty-body]
    """Register the modalities (model families + their input type) that this plugin provides.

    When: once, the first time tlhub needs the list of modalities (``tlhub run``, ``tlhub validate``,
    ``tlhub plugins``), after all plugins are loaded.

    Arguments: ``register``, a callback taking one :class:`tlhub.Modality`. Call it once per modality.
    tlhub checks what is registered (unique name, known input type) and raises ``PluginError`` otherwise.

    Returns: nothing; every plugin's implementation is called.
    """


@hookspec
def register_metrics(register: Callable[[Metric], None]) -> None:  # type: ignore[empty-body]
    """Register metrics that recipes can name in ``eval.metrics`` (and ``eval.select_metric``).

    When: once, the first time a recipe is validated or plugins are listed.

    Arguments: ``register``, a callback taking one :class:`tlhub.Metric`: its name, an ``evaluate`` metric
    module (the path of a local module file, so that it loads offline) whose ``compute`` takes
    ``predictions``, ``references`` and ``label_names``, and a one-line description. tlhub registers
    ``accuracy``, ``f1`` and ``f1_per_class`` through this same hook (``tlhub/builtins.py``).

    Returns: nothing; every plugin's implementation is called.
    """


@hookspec
def register_trackers(register: Callable[[Tracker], None]) -> None:  # type: ignore[empty-body]
    """Register experiment trackers that recipes can name in ``train.report_to``, beside Accelerate's own.

    When: once, the first time a recipe is validated or plugins are listed.

    Arguments: ``register``, a callback taking one :class:`tlhub.Tracker`: its name, ``make(logging_dir)``
    returning a new ``accelerate.tracking.GeneralTracker`` for a run, and a one-line description. Accelerate
    hands it the recipe once, then the training log and each epoch's validation metrics.

    Returns: nothing; every plugin's implementation is called.
    """


@hookspec
def register_strategies(register: Callable[[Strategy], None]) -> None:  # type: ignore[empty-body]
    """Register tuning strategies that recipes can name in ``tuning.strategy``, with options under
    ``tuning.<name>``.

    When: once, the first time a recipe is validated or plugins are listed.

    Arguments: ``register``, a callback taking one :class:`tlhub.Strategy`: its name, a pydantic model of its
    options, ``apply(model, options, modality) -> model`` and optionally ``check`` and ``schedule``. tlhub
    registers ``head``, ``full`` and ``lora`` through this same hook (``tlhub/builtins.py``).

    Returns: nothing; every plugin's implementation is called.
    """


@hookspec
def register_sources(register: Callable[[Source], None]) -> None:  # type: ignore[empty-body]
    """Register named data sources that a recipe can use as ``data.source``.

    When: once, the first time tlhub resolves a ``data.source`` or lists plugins.

    Arguments: ``register``, a callback taking one :class:`tlhub.Source` (a name, a description and a
    function ``load(data)`` returning a ``datasets.DatasetDict``, given the recipe's ``data`` section for
    its ``data_files`` and ``load_options``). A registered name wins over a ``datasets`` path of the same
    spelling.

    Returns: nothing; every plugin's implementation is called.
    """


# --- Resolution: called while a recipe is validated -----------------------------------------------


@hookspec(firstresult=True)
def locate_checkpoint(name: str) -> LocalCopy | None:
    """Offer a local copy of the checkpoint a recipe names by its Hub id, such as one a package ships.

    When: while validating a recipe whose ``model.checkpoint`` is a Hub id (``org/name``) that is not a
    local folder and not in the Hugging Face cache; before tlhub falls back to the Hub.

    Arguments: ``name``, the Hub id as the recipe writes it (``sentence-transformers/all-MiniLM-L6-v2``).

    Returns: a :class:`tlhub.LocalCopy` (the folder, with config.json, weights and preprocessing files,
    and a few words on where it comes from), or ``None`` when this plugin has no copy. The first
    non-``None`` result wins.
    """
