"""Training-time augmentation of the image and audio plugins (``model.options.augment``): only the encoder
of training batches changes its input, randomly from torch's seeded generator; mixup and cutmix return
class probabilities; bad options are one line naming the key; an augmented run trains to the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest
import torch

import tlhub
from tests.conftest import (
    digits_recipe,
    tiny_audio_config,
    tiny_vit_config,
    tones_recipe,
    write_recipe,
    write_tones,
)
from tests.test_cli_errors import assert_refused
from tlhub.modality import accepts
from tlhub.plugins import modalities
from tlhub.recipe import Recipe

IMAGE_AUGMENT = {
    "crop_scale": [0.5, 1.0],
    "horizontal_flip": 0.5,
    "rotation_degrees": 20.0,
    "brightness": 0.3,
    "contrast": 0.3,
    "saturation": 0.3,
    "hue": 0.05,
    "policy": "trivial",
}
AUDIO_AUGMENT = {"speed_factors": [0.9, 1.0, 1.1], "shift_seconds": 0.05, "gain_db": [-6, 6], "noise_snr_db": [10, 30]}


def encoder(plugin: str, options: dict[str, Any] | None, training: bool) -> tuple[Any, Any]:
    """The plugin's encoder for a tiny model, made the way tlhub makes it (keyword call, strict options)."""
    modality = modalities()[plugin]
    config = tiny_vit_config() if plugin == "image" else tiny_audio_config("wav2vec2", feat_extract_norm="layer")
    processor = modality.call("new_processor", config=config)
    assert modality.options is not None
    validated = None if options is None else modality.options.model_validate(options, strict=True)
    encode = modality.call("make_encoder", processor=processor, config=config, options=validated, training=training)
    return encode, config


def images() -> list[PIL.Image.Image]:
    rng = np.random.default_rng(0)
    gray = [PIL.Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)) for _ in range(3)]
    return [*gray, PIL.Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))]


def clips() -> list[np.ndarray]:
    t = np.arange(16000) / 16000
    return [
        (0.5 * np.sin(2 * np.pi * hz * t[: int(16000 * s)])).astype(np.float32) for hz, s in ((300, 0.3), (900, 0.5))
    ]


def examples(plugin: str) -> list[Any]:
    return images() if plugin == "image" else clips()


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- only training batches change -------------------------------------------------------------------------


def test_the_runs_training_batches_replay_exactly_and_change_with_the_epochs_order(tmp_path: Path, tiny_vit) -> None:
    """The runner's collates: a training batch is augmented from a seed of its examples (so a resumed run
    replays it), the same examples in another epoch's order are augmented anew, evaluation never is."""
    from tlhub.data import INDEX_COLUMN
    from tlhub.plan import make_plan
    from tlhub.runner import _collate

    recipe = digits_recipe(
        tiny_vit,
        tmp_path / "out",
        model={"plugin": "image", "checkpoint": str(tiny_vit), "options": {"augment": IMAGE_AUGMENT}},
    )
    plan = make_plan(Recipe.model_validate(recipe))
    rows = [plan.splits.train[i] for i in range(4)]
    assert [r[INDEX_COLUMN] for r in rows] == plan.splits.train[:4][INDEX_COLUMN]
    train, evaluation = _collate(plan, training=True), _collate(plan)
    torch.manual_seed(1)
    first = train(rows)
    torch.manual_seed(2)  # the global generator's state does not matter: a resumed run's differs
    assert same(first, train(rows))
    shuffled = train(rows[::-1])  # the same images in the order of another epoch's batch
    assert not torch.equal(shuffled["pixel_values"].flip(0), first["pixel_values"])
    assert same(evaluation(rows), evaluation(rows))
    assert not torch.equal(evaluation(rows)["pixel_values"], first["pixel_values"])


@pytest.mark.parametrize(("plugin", "augment"), [("image", IMAGE_AUGMENT), ("audio", AUDIO_AUGMENT)])
def test_training_batches_change_every_epoch_and_evaluation_batches_never(plugin: str, augment: dict) -> None:
    values = examples(plugin)
    train, _ = encoder(plugin, {"augment": augment}, training=True)
    evaluate, _ = encoder(plugin, {"augment": augment}, training=False)
    plain, _ = encoder(plugin, None, training=False)
    torch.manual_seed(0)
    first, second = train(values), train(values)
    assert not same(first, second), "two epochs of the same examples gave the same augmented batch"
    assert same(evaluate(values), evaluate(values))
    assert same(evaluate(values), plain(values)), "evaluation must see the examples as they are"


@pytest.mark.parametrize("plugin", ["image", "audio"])
def test_without_augment_training_and_evaluation_batches_are_equal(plugin: str) -> None:
    values = examples(plugin)
    train, _ = encoder(plugin, {}, training=True)  # the default options: every augmentation off
    evaluate, _ = encoder(plugin, {}, training=False)
    assert same(train(values), evaluate(values))


@pytest.mark.parametrize(("plugin", "augment"), [("image", IMAGE_AUGMENT), ("audio", AUDIO_AUGMENT)])
def test_the_same_torch_seed_gives_the_same_augmented_batch(plugin: str, augment: dict) -> None:
    values = examples(plugin)
    train, _ = encoder(plugin, {"augment": augment}, training=True)
    torch.manual_seed(7)
    first = train(values)
    torch.manual_seed(7)
    assert same(first, train(values))


# --- mixup and cutmix ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mix", [{"mixup_alpha": 0.4}, {"cutmix_alpha": 1.0}, {"mixup_alpha": 0.4, "cutmix_alpha": 1.0}]
)
def test_mixup_and_cutmix_return_class_probabilities(mix: dict[str, float]) -> None:
    train, config = encoder("image", {"augment": mix}, training=True)
    assert accepts(train, "labels"), "tlhub passes the class ids only to an encoder that names `labels`"
    ids = torch.tensor([0, 1, 2, 4])
    torch.manual_seed(0)
    batch = train(images(), labels=ids)
    labels = batch["labels"]
    assert labels.dtype == torch.float32 and labels.shape == (4, config.num_labels)
    assert torch.allclose(labels.sum(dim=1), torch.ones(4))
    assert (labels.argmax(dim=1) != ids).any() or (labels.max(dim=1).values < 1).any(), "nothing was mixed"
    assert batch["pixel_values"].shape == (4, 3, 16, 16)
    evaluate, _ = encoder("image", {"augment": mix}, training=False)
    assert "labels" not in evaluate(images(), labels=ids), "evaluation keeps the class ids tlhub collates"


# --- SpecAugment: transformers' own, switched on through the config ------------------------------------


def test_spec_augment_is_set_on_the_model_and_masks_in_training_only(tiny_wav2vec2: Path) -> None:
    from transformers import AutoModelForAudioClassification

    audio = modalities()["audio"]
    assert audio.options is not None
    augment = {"mask_time_prob": 0.5, "mask_time_length": 2, "mask_time_min_masks": 1}
    options = audio.options.model_validate({"augment": augment}, strict=True)
    model = AutoModelForAudioClassification.from_pretrained(tiny_wav2vec2)
    assert model.config.mask_time_prob == 0.0  # the tiny checkpoint masks nothing
    notes = audio.call("extend_model", model=model, options=options)
    assert model.config.mask_time_prob == 0.5 and model.config.mask_time_length == 2
    assert any("SpecAugment in training" in n for n in notes), notes
    assert model.wav2vec2.masked_spec_embed.shape == (model.config.hidden_size,)

    train = audio.call(
        "make_encoder",
        processor=audio.call("new_processor", config=model.config),
        config=model.config,
        options=options,
        training=True,
    )
    model.train()
    short = train([np.linspace(-0.5, 0.5, 40, dtype=np.float32)])  # one frame, under a mask's two: padded
    assert short["input_values"].shape[1] > 40
    assert model(**short).logits.shape == (1, 2)  # transformers refuses a batch shorter than one mask
    batch = train(clips())

    def logits(mask_time_prob: float) -> torch.Tensor:
        model.config.mask_time_prob = mask_time_prob
        torch.manual_seed(0)
        np.random.seed(0)  # transformers draws its masks from numpy's generator (seeded by tlhub's set_seed)
        with torch.no_grad():
            return model(**batch).logits  # type: ignore[no-any-return]

    assert not torch.equal(logits(0.5), logits(0.0)), "training mode must mask"
    model.eval()
    assert torch.equal(logits(0.5), logits(0.0)), "evaluation must not mask"


# --- bad options: one line naming the key, exit code 2 --------------------------------------------------


@pytest.mark.parametrize(
    ("augment", "message"),
    [
        (
            {"horizontal_flip": -0.1},
            "model.options.augment.horizontal_flip: Input should be greater than or equal to 0",
        ),
        ({"policy": "autoaugment"}, "model.options.augment.policy: Input should be 'none', 'trivial' or 'randaugment'"),
        ({"crop_scale": [0.9, 0.2]}, "model.options.augment.crop_scale: write the range as [min, max]"),
        ({"crop_scale": [0.5]}, "model.options.augment.crop_scale: List should have at least 2 items"),
        ({"flip": 0.5}, "model.options.augment.flip: unknown key"),
    ],
    ids=["negative-probability", "unknown-policy", "scale-min-over-max", "scale-one-value", "unknown-key"],
)
def test_bad_image_augment_is_refused_naming_the_key(cli, tmp_path: Path, tiny_vit: Path, augment, message) -> None:
    recipe = digits_recipe(tiny_vit, tmp_path / "out")
    recipe["model"]["options"] = {"augment": augment}
    result = cli("validate", write_recipe(tmp_path / "r.yaml", recipe))
    assert_refused(result, message, output_dir=tmp_path / "out")
    assert len([line for line in result.output.splitlines() if "model.options.augment" in line]) == 1, result.output


@pytest.mark.parametrize(
    ("augment", "message"),
    [
        ({"gain_db": [6, -6]}, "model.options.augment.gain_db: write the range as [min, max]"),
        ({"speed_factors": [0.905]}, "model.options.augment.speed_factors: speed factors take two decimals at most"),
        ({"mask_time_prob": 1.5}, "model.options.augment.mask_time_prob: Input should be less than or equal to 1"),
        (
            {"mask_time_prob": 0.1, "mask_time_length": 1000},
            "model.options.augment.mask_time_length: a time mask of 1000",
        ),
        ({"pitch": 2}, "model.options.augment.pitch: unknown key"),
    ],
    ids=["gain-min-over-max", "speed-decimals", "mask-probability", "mask-longer-than-clips", "unknown-key"],
)
def test_bad_audio_augment_is_refused_naming_the_key(
    cli, tmp_path: Path, tiny_wav2vec2: Path, augment, message
) -> None:
    folder = write_tones(tmp_path / "clips", per_class=4)
    recipe = tones_recipe(tiny_wav2vec2, folder, tmp_path / "out")
    recipe["model"]["options"]["augment"] = augment
    assert_refused(cli("validate", write_recipe(tmp_path / "r.yaml", recipe)), message, output_dir=tmp_path / "out")


# --- a whole run ---------------------------------------------------------------------------------------


def test_a_run_with_image_augmentation_and_mixup_trains_says_so_and_repeats(tmp_path: Path, tiny_vit: Path) -> None:
    from safetensors.torch import load_file

    augment = {"crop_scale": [0.6, 1.0], "rotation_degrees": 10.0, "mixup_alpha": 0.2, "cutmix_alpha": 1.0}
    results = []
    for name in ("first", "again"):
        recipe = digits_recipe(tiny_vit, tmp_path / name, train={"epochs": 1})
        recipe["model"]["options"] = {"augment": augment}
        results.append(tlhub.run(Recipe.model_validate(recipe)))
    first, again = results
    assert first.metrics["test"]["examples"] == 360
    card = (first.output_dir / "README.md").read_text()
    assert '(`model.options`; augmentation under `augment` applies to training batches\n  only): `{"augment": {' in card
    assert '"mixup_alpha": 0.2, "cutmix_alpha": 1.0}}`' in card
    # train.seed seeds torch's generator, the augmentation's source: the same recipe trains the same model
    assert first.metrics == again.metrics
    weights, repeated = (
        load_file(first.output_dir / "model.safetensors"),
        load_file(again.output_dir / "model.safetensors"),
    )
    assert all(torch.equal(weights[k], repeated[k]) for k in weights)


def test_a_run_with_audio_augmentation_and_spec_augment_trains_and_says_so(tmp_path: Path, tiny_wav2vec2: Path) -> None:
    import json

    folder = write_tones(tmp_path / "clips", per_class=8)
    recipe = tones_recipe(tiny_wav2vec2, folder, tmp_path / "out", train={"epochs": 1})
    recipe["model"]["options"]["augment"] = {**AUDIO_AUGMENT, "mask_time_prob": 0.2, "mask_time_length": 2}
    result = tlhub.run(Recipe.model_validate(recipe))
    card = (result.output_dir / "README.md").read_text()
    assert '"speed_factors": [0.9, 1.0, 1.1]' in card
    assert "SpecAugment in training (model.options.augment, set on the saved config)" in card
    config = json.loads((result.output_dir / "config.json").read_text())
    assert config["mask_time_prob"] == 0.2 and config["mask_time_length"] == 2
