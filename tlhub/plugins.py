"""The plugin manager: loads plugins from the ``tlhub`` entry-point group and collects what they register.

A plugin that fails (its import raises, a hook raises, it registers something invalid or a name another
plugin took) is recorded under its own name: ``tlhub plugins`` lists it with the error, and only recipes
that need what it would have registered stop.

Operator switches (environment variables):

- ``TLHUB_LOAD_PLUGINS=image,text`` loads only the named entry points (empty: none).
- ``TLHUB_TRACE_HOOKS=1`` prints every hook call and its result to stderr.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from tlhub import builtins, hookspecs, input_types
from tlhub import metrics as metric_modules
from tlhub.errors import PluginError
from tlhub.input_types import InputType
from tlhub.metrics import Metric
from tlhub.modality import Modality, registration_problems
from tlhub.sources import Source
from tlhub.trackers import Tracker
from tlhub.trackers import problems as tracker_problems
from tlhub.tuning import Strategy, strategy_problems

ENTRY_POINT_GROUP = "tlhub"
# tlhub's own hook implementations (built-in input types and metrics), registered like a plugin under this name.
CORE = "tlhub"

pm = pluggy.PluginManager("tlhub")
pm.add_hookspecs(hookspecs)
pm.register(builtins, name=CORE)

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
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # a broken plugin must not take the others down
            failed_plugins[ep.name] = _describe(exc)
    if os.environ.get("TLHUB_TRACE_HOOKS"):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    while True:  # a hook implementation that matches no spec (a typo) disables its plugin, not tlhub
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) or "?"
            pm.unregister(exc.plugin)
            failed_plugins[name] = _describe(exc)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@dataclass
class Registry:
    """What every loaded plugin registered, and what went wrong, by plugin."""

    input_types: dict[str, InputType] = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)
    strategies: dict[str, Strategy] = field(default_factory=dict)
    modalities: dict[str, Modality] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    trackers: dict[str, Tracker] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)  # plugin name -> problems
    # (kind, name) -> the plugins that registered it: an ambiguous name that no recipe can use
    taken_twice: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def fail(self, plugin: str, problem: str) -> None:
        self.errors.setdefault(plugin, []).append(problem)


def _each_plugin(hook_name: str) -> list[tuple[str, pluggy.HookCaller]]:
    """``(plugin name, caller)`` for each plugin implementing ``hook_name``, called through pluggy (so
    tracing sees it) one plugin at a time, to know who registered what."""
    plugins = pm.get_plugins()
    callers = []
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        others = [p for p in plugins if p is not impl.plugin]
        callers.append((pm.get_name(impl.plugin) or "?", pm.subset_hook_caller(hook_name, remove_plugins=others)))
    return callers


_LABELS = {
    InputType: "input type",
    Metric: "metric",
    Modality: "modality",
    Source: "data source",
    Strategy: "strategy",
    Tracker: "tracker",
}


def _collect(registry: Registry, hook_name: str, kind: type[Any], into: dict[str, Any]) -> None:
    label = _LABELS[kind]
    for plugin, caller in _each_plugin(hook_name):
        items: list[Any] = []
        try:
            caller(register=items.append)
        except Exception as exc:  # one plugin's bug stops only recipes that need that plugin
            registry.fail(plugin, f"{hook_name} raised {_describe(exc)}")
            continue
        for item in items:
            if kind is Modality:  # its input type must be one registered before
                problems = registration_problems(item, registry.input_types)
            else:
                problems = _PROBLEMS[kind](item)
            if problems:
                for problem in problems:
                    registry.fail(plugin, f"{hook_name}: {problem}")
                continue
            item = dataclasses.replace(item, plugin=plugin)
            if (first := into.get(item.name)) is not None:
                registry.taken_twice.setdefault((label, item.name), [first.plugin]).append(plugin)
                registry.fail(
                    plugin, f"{hook_name}: {label} '{item.name}' is also registered by plugin '{first.plugin}'"
                )
                continue
            into[item.name] = item
    for taken_kind, name in registry.taken_twice:
        if taken_kind == label:
            into.pop(name, None)  # ambiguous: neither wins


def _source_problems(item: object) -> list[str]:
    if not isinstance(item, Source):
        return [f"registered {item!r}; expected a tlhub.Source"]
    return [] if callable(item.load) else [f"data source '{item.name}': load is {item.load!r}, not a function"]


# What makes a registered object unusable, by the kind of object it should be.
_PROBLEMS: dict[type[Any], Any] = {
    InputType: input_types.problems,
    Metric: metric_modules.problems,
    Strategy: strategy_problems,
    Source: _source_problems,
    Tracker: tracker_problems,
}


def registry() -> Registry:
    """Call every plugin's ``register_*`` hooks; what each registered, and each plugin's problems."""
    load_plugins()
    found = Registry(errors={name: [error] for name, error in failed_plugins.items()})
    _collect(found, "register_input_types", InputType, found.input_types)  # first: modalities name them
    _collect(found, "register_modalities", Modality, found.modalities)
    _collect(found, "register_metrics", Metric, found.metrics)
    _collect(found, "register_strategies", Strategy, found.strategies)
    _collect(found, "register_sources", Source, found.sources)
    _collect(found, "register_trackers", Tracker, found.trackers)
    return found


def modalities() -> dict[str, Modality]:
    """Every usable registered modality by name."""
    return registry().modalities


def metrics() -> dict[str, Metric]:
    """Every usable registered metric by name."""
    return registry().metrics


def strategies() -> dict[str, Strategy]:
    """Every usable registered tuning strategy by name."""
    return registry().strategies


def trackers() -> dict[str, Tracker]:
    """Every usable registered experiment tracker by name (Accelerate's own are not among them)."""
    return registry().trackers


def sources() -> dict[str, Source]:
    """Every usable registered data source by name."""
    return registry().sources


def _unusable(registry: Registry, kind: str, name: str) -> PluginError | None:
    """Why ``name`` is not usable when a broken or clashing plugin is behind it."""
    if owners := registry.taken_twice.get((kind, name)):
        return PluginError(f"{kind} '{name}' is registered by several plugins ({', '.join(owners)}); uninstall one")
    if name in registry.errors:  # a plugin whose entry point has this name, but it is broken
        return PluginError(f"plugin '{name}' is installed but failed to load: {'; '.join(registry.errors[name])}")
    return None


def resolve_modality(name: str, found: Registry | None = None) -> Modality:
    """The modality a recipe's ``model.plugin`` names, or a ``PluginError`` saying why there is none.

    ``found`` is a registry already collected (else the plugins are asked again)."""
    found = found or registry()
    if name in found.modalities:
        return found.modalities[name]
    if (problem := _unusable(found, "modality", name)) is not None:
        raise PluginError(f"model.plugin: {problem}")
    known = ", ".join(sorted(found.modalities)) or "none"
    close = difflib.get_close_matches(name, list(found.modalities), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    # model.plugin names a modality, which a plugin of any entry-point name may register: a broken one may be it
    broken = "; ".join(f"'{plugin}' ({problems[0]})" for plugin, problems in sorted(found.errors.items()))
    maybe = f"; plugins that failed to load, which may register it: {broken}" if broken else ""
    raise PluginError(f"model.plugin: '{name}' is not a known plugin (known: {known}){hint}{maybe}")


def source_problem(name: str, registry: Registry) -> PluginError | None:
    """Why a ``data.source`` that a broken or clashing plugin would register cannot be used."""
    problem = _unusable(registry, "data source", name)
    return None if problem is None else PluginError(f"data.source: {problem}")


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
    input_types: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    strategies: list[str] = field(default_factory=list)
    trackers: list[str] = field(default_factory=list)
    # What each registered name is: "image input, builds vit: ViT image classifiers (...)"
    described: dict[str, str] = field(default_factory=dict)


def plugin_infos() -> list[PluginInfo]:
    """What loaded, from which distribution, with which hooks; and what failed, with why."""
    found = registry()
    from importlib.metadata import PackageNotFoundError, distribution

    dists = {ep.name: ep.dist for ep in entry_points(group=ENTRY_POINT_GROUP)}
    try:
        dists.setdefault(CORE, distribution("tlhub"))
    except PackageNotFoundError:  # run from a source tree that is not installed
        pass
    names = {name for name, _ in pm.list_name_plugin()} | set(found.errors)
    infos = []
    for name in sorted(names):
        plugin = pm.get_plugin(name)
        dist = dists.get(name)
        errors = found.errors.get(name)
        infos.append(
            PluginInfo(
                name=name,
                hooks=sorted(h.name for h in pm.get_hookcallers(plugin) or []) if plugin is not None else [],
                distribution=dist.name if dist else None,
                version=dist.version if dist else None,
                modalities=sorted(m.name for m in found.modalities.values() if m.plugin == name),
                sources=sorted(s.name for s in found.sources.values() if s.plugin == name),
                error="; ".join(errors) if errors else None,
                input_types=sorted(t.name for t in found.input_types.values() if t.plugin == name),
                metrics=sorted(m.name for m in found.metrics.values() if m.plugin == name),
                strategies=sorted(t.name for t in found.strategies.values() if t.plugin == name),
                trackers=sorted(t.name for t in found.trackers.values() if t.plugin == name),
                described={
                    **{
                        t.name: f"{t.description} (datasets features: {', '.join(t.features)})"
                        for t in found.input_types.values()
                        if t.plugin == name
                    },
                    **{
                        m.name: f"{m.input_type} input, builds {', '.join(m.model_types)}"
                        + (f": {m.description}" if m.description else "")
                        for m in found.modalities.values()
                        if m.plugin == name
                    },
                    **{s.name: s.description for s in found.sources.values() if s.plugin == name},
                    **{m.name: m.description for m in found.metrics.values() if m.plugin == name},
                    **{t.name: t.description for t in found.strategies.values() if t.plugin == name},
                    **{t.name: t.description for t in found.trackers.values() if t.plugin == name},
                },
            )
        )
    return infos
