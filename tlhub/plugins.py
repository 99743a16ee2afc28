"""The plugin manager: loads plugins from the ``tlhub`` entry-point group and collects what they register.

Operator switches (environment variables):

- ``TLHUB_LOAD_PLUGINS=image,text`` loads only the named entry points (empty: none).
- ``TLHUB_TRACE_HOOKS=1`` prints every hook call and its result to stderr.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from tlhub import hookspecs
from tlhub.errors import PluginError
from tlhub.modality import INPUT_TYPES, Modality
from tlhub.sources import Source

ENTRY_POINT_GROUP = "tlhub"

pm = pluggy.PluginManager("tlhub")
pm.add_hookspecs(hookspecs)

_loaded = False
# entry-point name -> "ExceptionType: message" for plugins that failed to import.
failed_plugins: dict[str, str] = {}


def load_plugins() -> None:
    """Import every plugin of the ``tlhub`` entry-point group once; record those that fail to import."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    allow = os.environ.get("TLHUB_LOAD_PLUGINS")
    allowed = None if allow is None else {n.strip() for n in allow.split(",") if n.strip()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not take the others down
            failed_plugins[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        pm.register(plugin, name=ep.name)
    if os.environ.get("TLHUB_TRACE_HOOKS"):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    pm.check_pending()


def _collect(hook_name: str, kind: type[Any]) -> list[Any]:
    """Call a ``register_*`` hook on each plugin; return what each registered, tagged with its plugin."""
    load_plugins()
    items: list[Any] = []
    plugins = pm.get_plugins()
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        plugin_name = pm.get_name(impl.plugin) or "?"

        def register(item: Any, _plugin: str = plugin_name) -> None:
            if not isinstance(item, kind):
                raise PluginError(
                    f"plugin '{_plugin}' registered {item!r} from {hook_name}; expected a {kind.__name__}"
                )
            items.append(dataclasses.replace(item, plugin=_plugin))

        # Call through pluggy (so tracing sees it), one plugin at a time to know who registered what.
        others = [p for p in plugins if p is not impl.plugin]
        pm.subset_hook_caller(hook_name, remove_plugins=others)(register=register)
    return items


def modalities() -> dict[str, Modality]:
    """Every registered modality by name, checked for unique names and known input types."""
    found: dict[str, Modality] = {}
    for m in _collect("register_modalities", Modality):
        if m.input_type not in INPUT_TYPES:
            raise PluginError(
                f"plugin '{m.plugin}' registered modality '{m.name}' with input type "
                f"'{m.input_type}' (known: {', '.join(INPUT_TYPES)})"
            )
        if m.name in found:
            raise PluginError(
                f"modality '{m.name}' is registered twice (plugins '{found[m.name].plugin}' and '{m.plugin}')"
            )
        found[m.name] = m
    return found


def sources() -> dict[str, Source]:
    """Every registered data source by name."""
    found: dict[str, Source] = {}
    for s in _collect("register_sources", Source):
        if s.name in found:
            raise PluginError(
                f"data source '{s.name}' is registered twice (plugins '{found[s.name].plugin}' and '{s.plugin}')"
            )
        found[s.name] = s
    return found


def resolve_modality(name: str) -> Modality:
    """The modality a recipe's ``model.plugin`` names, or a ``PluginError`` saying why there is none."""
    known = modalities()
    if name in known:
        return known[name]
    if name in failed_plugins:
        raise PluginError(f"model.plugin: plugin '{name}' is installed but failed to load: {failed_plugins[name]}")
    raise PluginError(f"model.plugin: '{name}' is not a known plugin (known: {', '.join(sorted(known)) or 'none'})")


@dataclass(frozen=True)
class PluginInfo:
    """One row of ``tlhub plugins``."""

    name: str
    hooks: list[str]
    distribution: str | None
    version: str | None
    modalities: list[str]
    sources: list[str]
    error: str | None = None


def plugin_infos() -> list[PluginInfo]:
    """What loaded, from which distribution, with which hooks; and what failed to load."""
    load_plugins()
    dists = {ep.name: ep.dist for ep in entry_points(group=ENTRY_POINT_GROUP)}
    mods, srcs = modalities(), sources()
    infos = []
    for name, plugin in pm.list_name_plugin():
        dist = dists.get(name)
        infos.append(
            PluginInfo(
                name=name,
                hooks=sorted(h.name for h in pm.get_hookcallers(plugin) or []),
                distribution=dist.name if dist else None,
                version=dist.version if dist else None,
                modalities=sorted(m.name for m in mods.values() if m.plugin == name),
                sources=sorted(s.name for s in srcs.values() if s.plugin == name),
            )
        )
    for name, error in failed_plugins.items():
        dist = dists.get(name)
        infos.append(PluginInfo(name, [], dist.name if dist else None, dist.version if dist else None, [], [], error))
    return sorted(infos, key=lambda i: i.name)
