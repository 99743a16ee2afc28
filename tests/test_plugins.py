"""The plugin system: what loads, what each plugin registered, and how failures are reported."""

from __future__ import annotations

import inspect
import json
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import tlhub
from tests.conftest import REPO
from tlhub import hookspecs, plugins, testing
from tlhub.errors import InputTypeError, PluginError


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
                load_processor=lambda checkpoint: checkpoint,
                new_processor=lambda config: config,
                check_data=lambda split: (split, []),
                make_encoder=lambda processor: processor,
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
    assert rows["image"]["described"]["image"].startswith("image input, builds vit: ViT image classifiers")
    assert rows["image"]["described"]["sklearn_digits"].startswith("scikit-learn's 1,797 real 8x8")
    text = cli("plugins").output
    assert "  modality text: text input, builds bert, roberta, xlm-roberta, distilbert: BERT-family" in text
    assert "  strategy lora: low-rank adapters (peft)" in text and "  metric f1: macro F1" in text


def test_a_registered_plugin_adds_its_modality(fake_plugin: types.ModuleType) -> None:
    modalities = plugins.modalities()
    assert modalities["faketext"].plugin == "fake_text"
    assert modalities["faketext"].input_type == "text"


def test_a_name_registered_twice_is_an_error_of_the_second_plugin_only(fake_plugin: types.ModuleType) -> None:
    clone = types.ModuleType("clone")
    clone.register_modalities = fake_plugin.register_modalities  # type: ignore[attr-defined]
    plugins.pm.register(clone, name="clone")
    try:
        infos = {i.name: i for i in plugins.plugin_infos()}
        assert (
            infos["clone"].error == "register_modalities: modality 'faketext' is also registered by plugin 'fake_text'"
        )
        assert infos["fake_text"].error is None and infos["image"].error is None
        with pytest.raises(
            PluginError, match=r"modality 'faketext' is registered by several plugins \(fake_text, clone\)"
        ):
            plugins.resolve_modality("faketext")
        assert plugins.resolve_modality("image").name == "image"
    finally:
        plugins.pm.unregister(name="clone")


def test_a_hook_that_raises_is_reported_under_its_plugin(fake_plugin: types.ModuleType) -> None:
    broken = types.ModuleType("broken")

    @tlhub.hookimpl
    def register_sources(register):  # type: ignore[no-untyped-def]
        raise KeyError("oops")

    broken.register_sources = register_sources  # type: ignore[attr-defined]
    plugins.pm.register(broken, name="broken")
    try:
        infos = {i.name: i for i in plugins.plugin_infos()}
        assert infos["broken"].error == "register_sources raised KeyError: 'oops'"
        assert "sklearn_digits" in plugins.sources() and "faketext" in plugins.modalities()
    finally:
        plugins.pm.unregister(name="broken")


def test_a_plugin_that_fails_to_import_is_reported_by_name(monkeypatch: pytest.MonkeyPatch, cli) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(plugins.failed_plugins, "video", "ModuleNotFoundError: No module named 'decord'")
    result = cli("plugins")
    assert "video (not installed from a distribution): FAILED TO LOAD: ModuleNotFoundError" in result.output
    with pytest.raises(PluginError, match="plugin 'video' is installed but failed to load: ModuleNotFoundError"):
        plugins.resolve_modality("video")


def test_a_modality_named_otherwise_than_its_broken_plugin_points_at_the_plugin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_vit: Path
) -> None:
    """model.plugin names a modality; the entry point that failed may have another name (tlhub-video: video)."""
    from tests.conftest import digits_recipe

    monkeypatch.setitem(plugins.failed_plugins, "tlhub-video", "ModuleNotFoundError: No module named 'decord'")
    recipe = tlhub.Recipe.model_validate(digits_recipe(tiny_vit, tmp_path / "out", model={"plugin": "vidoe"}))
    with pytest.raises(PluginError) as refused:
        tlhub.make_plan(recipe)
    assert str(refused.value) == (
        "model.plugin: 'vidoe' is not a known plugin (known: audio, image, text); plugins that failed to load, "
        "which may register it: 'tlhub-video' (ModuleNotFoundError: No module named 'decord')"
    )
    assert not (tmp_path / "out").exists()


def test_unknown_plugin_lists_the_known_ones() -> None:
    with pytest.raises(PluginError, match=r"model.plugin: 'video' is not a known plugin \(known: audio, image, text\)"):
        plugins.resolve_modality("video")


class TimeSeriesPlugin:
    """A third party's input type, registered through the hook tlhub's own built-ins use."""

    @tlhub.hookimpl
    def register_input_types(self, register: Any) -> None:
        register(
            tlhub.InputType(
                name="timeseries",
                description="readings over time",
                features=("List(Value(float32))",),
                main_inputs=("past_values",),
            )
        )


def test_a_plugin_registers_an_input_type_and_the_check_speaks_of_it() -> None:
    import datasets

    from tlhub.modality import check_input_types, config_input_type, feature_input_type

    plugin = TimeSeriesPlugin()
    plugins.pm.register(plugin, name="timeseries-test")
    try:
        found = plugins.registry()
    finally:
        plugins.pm.unregister(plugin)
    series = found.input_types["timeseries"]
    assert series.plugin == "timeseries-test"
    readings = datasets.List(datasets.Value("float32"))
    assert feature_input_type(readings, found.input_types) == "timeseries"
    assert feature_input_type(datasets.Sequence(datasets.Value("float32")), found.input_types) == "timeseries"
    assert feature_input_type(datasets.List(datasets.Value("int64")), found.input_types) is None
    assert feature_input_type(datasets.Value("string"), found.input_types) == "text"
    from transformers import PatchTSTConfig, ViTConfig

    assert config_input_type(PatchTSTConfig(), found.input_types) == "timeseries"
    image = found.modalities["image"]
    with pytest.raises(InputTypeError) as refused:
        check_input_types(image, "ckpt", ViTConfig(), "x", readings, found.modalities, found.input_types)
    assert str(refused.value) == (
        "checkpoint ckpt (model_type 'vit') was pretrained on images, but data column 'x' holds timeseries: a "
        "model only transfers to the input type it was pretrained on; no installed plugin handles timeseries."
    )
    with pytest.raises(
        InputTypeError,
        match=r"holds List\(Value\('int64'\)\), which is no registered input type "
        r"\(.*timeseries \(List\(Value\(float32\)\)\)\); plugin 'image' needs a column of images",
    ):
        check_input_types(
            image, "ckpt", ViTConfig(), "x", datasets.List(datasets.Value("int64")), found.modalities, found.input_types
        )
    assert "timeseries" not in plugins.registry().input_types  # gone with its plugin


BALANCED_ACCURACY = """
import datasets
import evaluate
from sklearn.metrics import balanced_accuracy_score


class BalancedAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="mean recall over classes", citation="", inputs_description="class ids",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, label_names=None):
        return {"balanced_accuracy": float(balanced_accuracy_score(references, predictions))}
"""


def test_a_plugin_registers_a_metric_that_recipes_name_and_runs_compute(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from tlhub.metrics import load_metrics
    from tlhub.recipe import EvalSection

    module = tmp_path / "balanced_accuracy.py"
    module.write_text(BALANCED_ACCURACY)

    class MetricPlugin:
        @tlhub.hookimpl
        def register_metrics(self, register: Any) -> None:
            register(tlhub.Metric(name="balanced_accuracy", module=str(module), description="mean recall"))

    plugin = MetricPlugin()
    plugins.pm.register(plugin, name="metric-test")
    try:
        assert plugins.metrics()["balanced_accuracy"].plugin == "metric-test"
        assert plugins.metrics()["accuracy"].plugin == "tlhub"  # the built-ins come through the same hook
        section = EvalSection(metrics=["accuracy", "balanced_accuracy"], select_metric="balanced_accuracy")
        combined = load_metrics(section.metrics)
        scores = combined.compute(predictions=[0, 0, 0, 1], references=[0, 0, 1, 1], label_names=["a", "b"])
        assert scores == {"accuracy": 0.75, "balanced_accuracy": 0.75}
        with pytest.raises(
            ValidationError,
            match=r"'balanced' is not a known metric \(known: accuracy, "
            r"balanced_accuracy, f1, f1_per_class\); did you mean 'balanced_accuracy'\?",
        ):
            EvalSection(metrics=["balanced"])
    finally:
        plugins.pm.unregister(plugin)
    with pytest.raises(ValidationError, match="'balanced_accuracy' is not a known metric"):
        EvalSection(metrics=["balanced_accuracy"])


class BiasOptions(tlhub.StrategyOptions):
    learning_rate: float | None = None
    include_norms: bool = False


def bitfit(model: Any, options: BiasOptions, modality: tlhub.Modality) -> Any:
    """BitFit: the biases train (and the norms' weights if asked), besides the new head."""
    head = modality.head(model.config)
    for name, param in model.named_parameters():
        in_head = any(name == h or name.startswith(h + ".") for h in head)
        norm = options.include_norms and "layernorm" in name
        param.requires_grad_(in_head or name.endswith(".bias") or norm)
    return model


class StrategyPlugin:
    @tlhub.hookimpl
    def register_strategies(self, register: Any) -> None:
        register(tlhub.Strategy(name="bitfit", options=BiasOptions, apply=bitfit, description="biases and head"))


def test_a_plugin_strategy_trains_what_it_says_with_options_from_the_recipe(tmp_path: Path, tiny_vit: Path) -> None:
    from pydantic import ValidationError

    from tests.conftest import digits_recipe
    from tlhub.recipe import Recipe, format_errors
    from tlhub.tuning import STRATEGIES

    plugin = StrategyPlugin()
    plugins.pm.register(plugin, name="strategy-test")
    try:
        assert set(STRATEGIES) < set(plugins.strategies()) and plugins.strategies()["head"].plugin == "tlhub"
        recipe = Recipe.model_validate(
            digits_recipe(
                tiny_vit,
                tmp_path / "out",
                tuning={"strategy": "bitfit", "bitfit": {"include_norms": True, "learning_rate": 0.01}},
            )
        )
        assert recipe.tuning.learning_rate(1e-3) == 0.01
        result = tlhub.run(recipe)
        before, after = (
            load_file(str(tiny_vit / "model.safetensors")),
            load_file(str(result.output_dir / "model.safetensors")),
        )
        backbone = [k for k in before if k in after and not k.startswith("classifier.")]  # the head is new
        changed = {k for k in backbone if not torch.equal(before[k], after[k])}
        assert changed and all(k.endswith(".bias") or "layernorm" in k for k in changed), changed
        assert any("attention" in k for k in changed)  # the backbone's biases did train
        with pytest.raises(ValidationError) as bad:
            Recipe.model_validate(
                digits_recipe(tiny_vit, tmp_path / "x", tuning={"strategy": "bitfit", "bitfit": {"include_norm": True}})
            )
        assert format_errors(bad.value, Recipe) == [
            "tuning.bitfit.include_norm: unknown key (valid keys here: learning_rate, include_norms); did you mean "
            "'include_norms'?"
        ]
        with pytest.raises(ValidationError) as bad:
            Recipe.model_validate(digits_recipe(tiny_vit, tmp_path / "x", tuning={"strategy": "full", "bitfix": {}}))
        assert format_errors(bad.value, Recipe) == [
            "tuning.bitfix: not a strategy's options (strategies: bitfit, full, head, lora)"
        ]
    finally:
        plugins.pm.unregister(plugin)
    with pytest.raises(ValidationError, match="'bitfit' is not a known strategy"):
        Recipe.model_validate(digits_recipe(tiny_vit, tmp_path / "x", tuning={"strategy": "bitfit"}))


def test_an_input_type_is_checked_when_registered() -> None:
    from tlhub.input_types import problems

    assert problems(tlhub.InputType(name="my type", description="", features=())) == [
        "input type 'my type': the name must be a word such as 'tabular'",
        "input type 'my type' names no datasets feature types",
    ]
    assert problems(tlhub.InputType(name="tab", description="", features=("List(",))) == [
        "input type 'tab': features ['List('] are not written like 'Image' or 'Value(string)'"
    ]


def test_load_plugins_env_var_limits_what_loads(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "from tlhub import plugins; plugins.load_plugins(); print(sorted(n for n, _ in plugins.pm.list_name_plugin()))"
    )
    env = {"TLHUB_LOAD_PLUGINS": "", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['tlhub']"  # no entry point: tlhub's own built-in input types only


def test_every_hook_is_documented_with_its_signature() -> None:
    docs = (REPO / "docs" / "plugins.md").read_text()
    for name, spec in inspect.getmembers(hookspecs, inspect.isfunction):
        if not hasattr(spec, "tlhub_spec"):
            continue
        signature = f"{name}({', '.join(inspect.signature(spec).parameters)})"
        assert re.search(rf"^### `{re.escape(signature)}`", docs, re.M), (
            f"docs/plugins.md lacks a section for {signature}"
        )


BROKEN_PACKAGES = {
    # entry-point name -> module source: three ways a third-party plugin can be broken
    "raises": (
        "import tlhub\n\n@tlhub.hookimpl\ndef register_modalities(register):\n    raise RuntimeError('no GPU driver')\n"
    ),
    "odd_type": (
        "import tlhub\nfrom tlhub_image import check_data, load_processor, make_encoder, new_processor\n\n"
        "@tlhub.hookimpl\ndef register_modalities(register):\n"
        "    register(tlhub.Modality(name='tabular', input_type='table', model_types=('vit',), auto_model='x',\n"
        "        pipeline_task='x', head_modules=('classifier',), lora_targets=('q_proj',),\n"
        "        load_processor=load_processor, new_processor=new_processor, check_data=check_data,\n"
        "        make_encoder=make_encoder))\n"
    ),
    "copycat": "from tlhub_image import register_modalities  # registers 'image' again\n",
}


def install_fake_packages(root: Path) -> dict[str, str]:
    """Each of BROKEN_PACKAGES as an installed distribution (module + dist-info with a tlhub entry point);
    returns the environment that sees them."""
    import os

    root.mkdir()
    for name, code in BROKEN_PACKAGES.items():
        (root / f"tlhub_fake_{name}.py").write_text(code)
        info = root / f"tlhub_fake_{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tlhub-fake-{name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[tlhub]\n{name} = tlhub_fake_{name}\n")
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
    env.pop("TLHUB_LOAD_PLUGINS", None)  # every installed entry point, the fake ones too
    return env


def test_broken_plugin_packages_are_listed_with_their_errors_and_others_still_run(
    tmp_path: Path, tiny_vit: Path
) -> None:
    import subprocess
    import sys

    from tests.conftest import digits_recipe, write_recipe

    env = install_fake_packages(tmp_path / "site")
    tlhub_cli = [sys.executable, "-m", "tlhub"]
    listed = subprocess.run([*tlhub_cli, "plugins", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["raises"]["error"] == "register_modalities raised RuntimeError: no GPU driver"
    assert rows["raises"]["distribution"] == "tlhub-fake-raises"
    # (an installed example package may register more input types after these)
    assert "modality 'tabular' has input type 'table' (registered: audio, image, text" in rows["odd_type"]["error"]
    assert rows["odd_type"]["error"].endswith("a plugin adds one with register_input_types)")
    # whichever of the two registers second (the entry points' order) is told the other has the name
    clash = {rows["copycat"]["error"], rows["image"]["error"]}
    assert clash in (
        {None, "register_modalities: modality 'image' is also registered by plugin 'image'"},
        {None, "register_modalities: modality 'image' is also registered by plugin 'copycat'"},
    ), clash
    assert rows["text"]["error"] is None and rows["audio"]["error"] is None

    text = subprocess.run([*tlhub_cli, "plugins"], env=env, capture_output=True, text=True, timeout=120)
    assert "raises (tlhub-fake-raises 0.1): FAILED TO LOAD: register_modalities raised RuntimeError" in text.stdout

    # The image modality is ambiguous now (two plugins register it): its recipes stop with one line ...
    recipe = write_recipe(tmp_path / "r.yaml", digits_recipe(tiny_vit, tmp_path / "out"))
    refused = subprocess.run(
        [*tlhub_cli, "validate", str(recipe)], env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2, refused.stderr
    several = r"modality 'image' is registered by several plugins \((image, copycat|copycat, image)\)"
    assert re.search(several, refused.stderr), refused.stderr
    assert "Traceback" not in refused.stderr
    # ... while without the copycat, the other broken packages leave image recipes running.
    env["TLHUB_LOAD_PLUGINS"] = "image,raises,odd_type"
    ran = subprocess.run([*tlhub_cli, "run", str(recipe)], env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert (tmp_path / "out" / "metrics.json").is_file()


def test_every_modality_field_and_call_argument_is_documented() -> None:
    import dataclasses

    from tlhub.modality import CALLS

    docs = (REPO / "docs" / "plugins.md").read_text()
    for field in dataclasses.fields(tlhub.Modality):
        if field.name != "plugin":  # set by tlhub, not by a plugin
            assert f"| `{field.name}`" in docs, f"docs/plugins.md lacks the Modality field {field.name}"
    for name, arguments in CALLS.items():
        assert f"`({', '.join(arguments)})" in docs, f"docs/plugins.md lacks the call {name}({', '.join(arguments)})"


def test_the_minimal_plugin_in_the_docs_works(tmp_path: Path, tiny_vit: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import digits_recipe, write_recipe

    docs = (REPO / "docs" / "plugins.md").read_text()
    code = docs.split("## A minimal plugin", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    module = types.ModuleType("docs_example")
    exec(compile(code, "docs/plugins.md", "exec"), module.__dict__)
    plugins.load_plugins()
    plugins.pm.register(module, name="docs_example")
    try:
        recipe = digits_recipe(tiny_vit, tmp_path / "out", model={"plugin": "vit-all-attention"})
        recipe["tuning"] = {"strategy": "lora"}
        result = cli("validate", write_recipe(tmp_path / "r.yaml", recipe))
        assert result.exit_code == 0, result.output
        assert "plugin 'vit-all-attention' (image)" in result.output
    finally:
        plugins.pm.unregister(name="docs_example")


def test_the_example_packages_use_only_public_names_of_tlhub() -> None:
    """What a plugin package may use of tlhub: the names of ``tlhub.__all__`` and the ``tlhub.testing`` module."""
    import ast

    public = set(tlhub.__all__) | {"testing"}
    used: dict[str, set[str]] = {}
    for path in sorted((REPO / "examples" / "plugins").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tlhub":
                names = {node.module.removeprefix("tlhub.")} if node.module != "tlhub" else {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                names = {a.name.removeprefix("tlhub.") for a in node.names if a.name.startswith("tlhub.")}
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "tlhub":
                names = {node.attr}
            else:
                continue
            used.setdefault(str(path.relative_to(REPO)), set()).update(names)
    assert len(used) >= 4, used  # both packages' code and tests
    private = {path: sorted(names - public) for path, names in used.items() if names - public}
    assert not private, private


class JsonLinesTracker:
    """A plugin's tracker: every call Accelerate makes, one JSON line each in ``logs/calls.jsonl``."""

    @staticmethod
    def make(logging_dir: str) -> Any:
        from accelerate.tracking import GeneralTracker

        class Calls(GeneralTracker):
            name = "jsonl"
            requires_logging_directory = False

            def __init__(self) -> None:
                super().__init__()
                self.path = Path(logging_dir) / "calls.jsonl"

            @property
            def tracker(self) -> Path:
                return self.path

            def _write(self, **entry: Any) -> None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a") as f:
                    f.write(json.dumps(entry) + "\n")

            def store_init_configuration(self, values: dict[str, Any]) -> None:
                self._write(call="config", values=values)

            def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
                self._write(call="log", values=values, step=step)

            def finish(self) -> None:
                self._write(call="finish")

        return Calls()

    @tlhub.hookimpl
    def register_trackers(self, register: Any) -> None:
        register(tlhub.Tracker(name="jsonl", make=self.make, description="every call, as JSON lines"))


def test_a_plugin_tracker_named_in_report_to_receives_the_run(tmp_path: Path, tiny_vit: Path) -> None:
    from pydantic import ValidationError

    from tests.conftest import digits_recipe
    from tlhub.recipe import TrainSection

    plugin = JsonLinesTracker()
    plugins.pm.register(plugin, name="tracker-test")
    try:
        assert plugins.trackers()["jsonl"].plugin == "tracker-test"
        train = {"epochs": 2, "report_to": ["jsonl"], "logging_steps": 1}
        tlhub.run(tlhub.Recipe.model_validate(digits_recipe(tiny_vit, tmp_path / "out", train=train)))
        calls = [json.loads(line) for line in (tmp_path / "out" / "logs" / "calls.jsonl").read_text().splitlines()]
        assert calls[0]["call"] == "config" and calls[0]["values"]["train.epochs"] == 2
        logged = [c["values"] for c in calls if c["call"] == "log"]
        assert len([v for v in logged if "validation/accuracy" in v]) == 2  # one per epoch
        assert any("train/loss" in v for v in logged) and calls[-1]["call"] == "finish"
        with pytest.raises(ValidationError, match=r"'jsnol' is not a known tracker \(known: aim, .*jsonl.*\); did"):
            TrainSection(report_to=["jsnol"])
    finally:
        plugins.pm.unregister(plugin)


def test_a_processor_that_cannot_be_saved_stops_the_plan_not_the_end_of_training(
    tmp_path: Path, tiny_vit: Path
) -> None:
    import dataclasses

    from tests.conftest import digits_recipe

    class Plain:  # preprocessing a plugin wrote by hand, with nothing to save it by
        def __call__(self, images: Any, return_tensors: str = "pt") -> dict[str, Any]:
            return {"pixel_values": torch.zeros(len(images), 3, 16, 16)}

    unsaved = dataclasses.replace(plugins.modalities()["image"], name="unsaved", load_processor=lambda: Plain())
    with testing.registered(registering(unsaved), name="unsaved-test"):
        recipe = tlhub.Recipe.model_validate(digits_recipe(tiny_vit, tmp_path / "out", model={"plugin": "unsaved"}))
        with pytest.raises(PluginError) as refused:
            tlhub.make_plan(recipe)
    assert str(refused.value).startswith("plugin 'unsaved': its processor (Plain) has no save_pretrained;")
    assert not (tmp_path / "out").exists()


def registering(modality: tlhub.Modality) -> object:
    """A plugin that registers ``modality``."""

    class One:
        @tlhub.hookimpl
        def register_modalities(self, register: Any) -> None:
            register(modality)

    return One()


@pytest.mark.parametrize(
    ("encoded", "problem"),
    [
        ({"pixels": torch.zeros(2, 3, 16, 16)}, "lacks pixel_values, the input ViTForImageClassification reads"),
        ({"pixel_values": [[0.0]] * 2}, "holds pixel_values that are not tensors (return_tensors='pt')"),
        (
            {"pixel_values": torch.zeros(2, 3, 16, 16), "interpolate_pos_encoding": torch.zeros(3)},
            "has tensors of different batch sizes",
        ),
    ],
)
def test_an_encoder_whose_batch_does_not_fit_the_model_stops_the_plan(
    tmp_path: Path, tiny_vit: Path, encoded: dict[str, Any], problem: str
) -> None:
    import dataclasses

    from tests.conftest import digits_recipe

    def make_encoder() -> Any:
        return lambda images: {k: v[: len(images)] if isinstance(v, list) else v for k, v in encoded.items()}

    misfit = dataclasses.replace(plugins.modalities()["image"], name="misfit", make_encoder=make_encoder)
    with testing.registered(registering(misfit), name="misfit-test"):
        recipe = tlhub.Recipe.model_validate(digits_recipe(tiny_vit, tmp_path / "out", model={"plugin": "misfit"}))
        with pytest.raises(PluginError) as refused:
            tlhub.make_plan(recipe)
    assert str(refused.value).startswith(f"plugin 'misfit': make_encoder's batch {problem}"), str(refused.value)
    assert not (tmp_path / "out").exists()
