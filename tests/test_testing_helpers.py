"""tlhub.testing, the helpers offered to plugin authors: the fake data each makes is what tlhub's own sources
and plugins read (the head and LoRA checks run in the example packages' own tests, examples/plugins/*/tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import digits_recipe
from tlhub import make_plan, testing
from tlhub.errors import InputTypeError
from tlhub.recipe import Recipe


def test_fake_audio_is_read_by_the_audio_files_source(tiny_wav2vec2: Path, tmp_path: Path) -> None:
    clips = testing.fake_audio(tmp_path / "clips", classes=("low", "mid", "high"), per_class=5)
    recipe = digits_recipe(
        tiny_wav2vec2,
        tmp_path / "out",
        model={"plugin": "audio", "checkpoint": str(tiny_wav2vec2)},
        data={
            "source": "audio_files",
            "data_files": {"train": str(clips / "*" / "*.wav")},
            "input_column": "audio",
            "train_samples_per_class": None,
            "test_fraction": 0.2,
            "validation_fraction": 0.2,
        },
    )
    plan = make_plan(Recipe.model_validate(recipe))
    assert plan.splits.labels == ["high", "low", "mid"]
    assert len(plan.splits.test) == 3 and len(plan.splits.train) + len(plan.splits.validation) == 12


def test_fake_texts_are_text_and_a_picture_model_refuses_them(tiny_text: Any, tiny_vit: Path, tmp_path: Path) -> None:
    table = testing.fake_texts(tmp_path / "texts.csv", per_class=10)
    data = {"source": "csv", "data_files": str(table), "input_column": "text", "train_samples_per_class": None}
    checkpoint = tiny_text("bert")
    recipe = digits_recipe(
        checkpoint,
        tmp_path / "out",
        model={
            "plugin": "text",
            "checkpoint": str(checkpoint),
            "options": {"max_length": 16, "unknown_tokens": "warn"},
        },
        data=data,
    )
    assert make_plan(Recipe.model_validate(recipe)).splits.labels == ["ham", "spam"]
    with pytest.raises(InputTypeError, match="holds text"):
        make_plan(Recipe.model_validate(digits_recipe(tiny_vit, tmp_path / "out2", data=data)))


def test_changed_tensors_sees_one_changed_value(tiny_vit: Path, tmp_path: Path) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    copy = Path(shutil.copytree(tiny_vit, tmp_path / "copy"))
    assert testing.changed_tensors(tiny_vit, copy) == []
    tensors = load_file(str(copy / "model.safetensors"))
    name = next(k for k in tensors if k.endswith("query.weight") or k.endswith("q_proj.weight"))
    tensors[name][0, 0] += 1e-3
    save_file(tensors, str(copy / "model.safetensors"), metadata={"format": "pt"})
    assert testing.changed_tensors(tiny_vit, copy) == [name]
    with pytest.raises(AssertionError, match="head-only training changed pretrained tensors"):
        testing.assert_head_only(tiny_vit, copy)
