"""Named data sources: data that a plugin can offer by name, as ``data.source: NAME`` in a recipe."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import datasets

if TYPE_CHECKING:
    from tlhub.recipe import DataSection


@dataclass(frozen=True)
class Source:
    """A dataset a plugin offers by name.

    Attributes:
        name: what a recipe writes as ``data.source``.
        load: ``data -> DatasetDict``: builds the dataset locally (no download) from the recipe's
            ``data`` section, whose ``data_files`` and ``load_options`` the source may read.
        description: one line for ``tlhub plugins``.
    """

    name: str
    load: Callable[[DataSection], datasets.DatasetDict]
    description: str = ""
    plugin: str = field(default="", compare=False)
