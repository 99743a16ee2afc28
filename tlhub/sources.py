"""Named data sources: data that a plugin can offer by name, as ``data.source: NAME`` in a recipe."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datasets
    from pydantic import BaseModel

    from tlhub.recipe import DataSection


@dataclass(frozen=True)
class Source:
    """A dataset a plugin offers by name.

    Attributes:
        name: what a recipe writes as ``data.source``.
        load: ``data -> DatasetDict``: builds the dataset locally (no download) from the recipe's
            ``data`` section. A source that reads ``data_files`` or ``load_options`` says so in
            ``reads``; tlhub refuses a recipe that sets one the source ignores.
        reads: the ``data`` keys the source reads besides ``source`` (``data_files``, ``load_options``).
        options: a pydantic model of the ``data.load_options`` it reads; tlhub validates them with it
            (strictly) in ``tlhub validate``, and ``load`` may validate them again to read them typed.
        description: one line for ``tlhub plugins``.
    """

    name: str
    load: Callable[[DataSection], datasets.DatasetDict]
    description: str = ""
    reads: tuple[str, ...] = ()
    options: type[BaseModel] | None = None
    plugin: str = field(default="", compare=False)
