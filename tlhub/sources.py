"""Named data sources: data that a plugin can offer by name, as ``data.source: NAME`` in a recipe."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import datasets


@dataclass(frozen=True)
class Source:
    """A dataset a plugin offers by name.

    Attributes:
        name: what a recipe writes as ``data.source``.
        load: returns the dataset, built locally (no download).
        description: one line for ``tlhub plugins``.
    """

    name: str
    load: Callable[[], datasets.DatasetDict]
    description: str = ""
    plugin: str = field(default="", compare=False)
