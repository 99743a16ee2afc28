"""The plugin system: what loads, what each plugin registered, and how failures are reported."""

from __future__ import annotations

import inspect
import json
import re
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import tlhub
from tests.conftest import REPO
from tlhub import hookspecs, plugins
from tlhub.errors import PluginError


@pytest.fixture
def fake_plugin() -> Iterator[types.ModuleType]:
    """A plugin registering a text modality and a source; unregistered after the test."""
    module = types.ModuleType("fake_text")

    @tlhub.hookimpl
    def register_modalities(register):  # type: ignore[no-untyped-def]
        register(
            tlhub.Modality(
                name="faketext",
                input_type="text",
                model_types=("bert",),
                auto_model=object,
                pipeline_task="text-classification",
                head_modules=("classifier",),
                lora_targets=("query",),
                load_processor=str,
                new_processor=str,
                check_data=lambda split, *a: (split, []),
                make_encoder=lambda *a: str,
            )
        )

    module.register_modalities = register_modalities  # type: ignore[attr-defined]
    plugins.load_plugins()
    plugins.pm.register(module, name="fake_text")
    yield module
    plugins.pm.unregister(name="fake_text")


def test_image_plugin_is_loaded_through_its_entry_point() -> None:
    (info,) = [i for i in plugins.plugin_infos() if i.name == "image"]
    assert info.distribution == "tlhub"
    assert info.hooks == ["register_modalities", "register_sources"]
    assert info.modalities == ["image"] and info.sources == ["sklearn_digits"]
    assert plugins.modalities()["image"].plugin == "image"


def test_plugins_json_lists_the_image_plugin_with_its_hooks(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("plugins", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["image"]["hooks"] == ["register_modalities", "register_sources"]
    assert rows["image"]["error"] is None


def test_a_registered_plugin_adds_its_modality(fake_plugin: types.ModuleType) -> None:
    modalities = plugins.modalities()
    assert modalities["faketext"].plugin == "fake_text"
    assert modalities["faketext"].input_type == "text"


def test_registering_twice_is_refused(fake_plugin: types.ModuleType) -> None:
    clone = types.ModuleType("clone")
    clone.register_modalities = fake_plugin.register_modalities  # type: ignore[attr-defined]
    plugins.pm.register(clone, name="clone")
    try:
        with pytest.raises(PluginError, match="modality 'faketext' is registered twice"):
            plugins.modalities()
    finally:
        plugins.pm.unregister(name="clone")


def test_a_plugin_that_fails_to_import_is_reported_by_name(monkeypatch: pytest.MonkeyPatch, cli) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(plugins.failed_plugins, "video", "ModuleNotFoundError: No module named 'decord'")
    result = cli("plugins")
    assert "video (not installed from a distribution): FAILED TO LOAD: ModuleNotFoundError" in result.output
    with pytest.raises(PluginError, match="plugin 'video' is installed but failed to load: ModuleNotFoundError"):
        plugins.resolve_modality("video")


def test_unknown_plugin_lists_the_known_ones() -> None:
    with pytest.raises(PluginError, match=r"model.plugin: 'video' is not a known plugin \(known: audio, image, text\)"):
        plugins.resolve_modality("video")


def test_load_plugins_env_var_limits_what_loads(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "from tlhub import plugins; plugins.load_plugins(); print(sorted(n for n, _ in plugins.pm.list_name_plugin()))"
    )
    env = {"TLHUB_LOAD_PLUGINS": "", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_hook_is_documented_with_its_signature() -> None:
    docs = (REPO / "docs" / "plugins.md").read_text()
    for name, spec in inspect.getmembers(hookspecs, inspect.isfunction):
        if not hasattr(spec, "tlhub_spec"):
            continue
        signature = f"{name}({', '.join(inspect.signature(spec).parameters)})"
        assert re.search(rf"^### `{re.escape(signature)}`", docs, re.M), (
            f"docs/plugins.md lacks a section for {signature}"
        )
