"""Input types: what kind of data a model reads, as plugins register it.

An :class:`InputType` names a kind of input (``image``, ``audio``, ``text``, or one a plugin adds, such as
``tabular`` or ``timeseries``), the ``datasets`` feature types a data column of that kind has, and the
``main_input_name`` of the transformers models that read it. The input-type check
(:func:`tlhub.modality.check_input_types`) compares the recipe's plugin, the checkpoint's config and the data
column through these registrations alone. tlhub registers its three built-in types through the same hook a
plugin package implements (``register_input_types``), in ``tlhub/builtins.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class InputType:
    """One kind of input.

    Attributes:
        name: what ``Modality.input_type`` names, e.g. ``"tabular"``.
        description: one line for ``tlhub plugins``.
        features: the ``datasets`` feature types a column of this kind has, written as text so that
            registering imports nothing: a feature class name (``"Image"``, ``"Audio"``), with the value type
            for ``Value`` (``"Value(string)"``) and the item type for ``List`` (``"List(Value(float32))"``).
        main_inputs: the ``main_input_name`` of transformers models that read this kind of input
            (``pixel_values``): how a checkpoint's config tells what it was pretrained on. May be empty.
        plural: the word in sentences ("pretrained on images"); default: ``name``.
        plugin: set by tlhub: the plugin that registered it.
    """

    name: str
    description: str
    features: tuple[str, ...]
    main_inputs: tuple[str, ...] = ()
    plural: str | None = None
    plugin: str = ""

    @property
    def words(self) -> str:
        return self.plural or self.name

    def accepts(self, feature: object) -> bool:
        """Whether a data column with this ``datasets`` feature holds this kind of input."""
        return any(_matches(feature, spec) for spec in self.features)


_SPEC = re.compile(r"^(\w+)(?:\((.+)\))?$")
_LISTS = {"List", "Sequence", "LargeList"}  # datasets 4 renamed Sequence to List; either spelling matches either


def _matches(feature: object, spec: str) -> bool:
    found = _SPEC.match(spec.replace(" ", ""))
    if found is None:
        return False
    kind, inner = found.groups()
    name = type(feature).__name__
    if not (name == kind or (kind in _LISTS and name in _LISTS)):
        return False
    if inner is None:
        return True
    if name == "Value":
        return str(getattr(feature, "dtype", "")) == inner
    if name in _LISTS:
        return _matches(getattr(feature, "feature", None), inner)
    return False


def problems(item: object) -> list[str]:
    """Why a registered object is not a usable :class:`InputType` (empty when it is)."""
    if not isinstance(item, InputType):
        return [f"registered {item!r}; expected a tlhub.InputType"]
    found = []
    if not item.name or not item.name.isidentifier():
        found.append(f"input type {item.name!r}: the name must be a word such as 'tabular'")
    if not item.features:
        found.append(f"input type '{item.name}' names no datasets feature types")
    bad = [spec for spec in item.features if not isinstance(spec, str) or _SPEC.match(spec.replace(" ", "")) is None]
    if bad:
        found.append(f"input type '{item.name}': features {bad!r} are not written like 'Image' or 'Value(string)'")
    return found
