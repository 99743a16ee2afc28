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

    from tlhub.modality import Modality
    from tlhub.sources import Source

hookspec = pluggy.HookspecMarker("tlhub")
hookimpl = pluggy.HookimplMarker("tlhub")


# --- Registration: called once, when plugins load -------------------------------------------------


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
def register_sources(register: Callable[[Source], None]) -> None:  # type: ignore[empty-body]
    """Register named data sources that a recipe can use as ``data.source``.

    When: once, the first time tlhub resolves a ``data.source`` or lists plugins.

    Arguments: ``register``, a callback taking one :class:`tlhub.Source` (a name, a description and a
    function returning a ``datasets.DatasetDict``). A registered name wins over a ``datasets`` path of
    the same spelling.

    Returns: nothing; every plugin's implementation is called.
    """
