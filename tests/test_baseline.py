"""The classical baselines (``Modality.baseline``) of the three first-party plugins, and ``fit_baseline``:
each learns small synthetic data through the real registered modality and its ``check_data``."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import HAM_WORDS, SPAM_WORDS, tiny_audio_config, tiny_text_config, tiny_vit_config, write_wav
from tlhub import plugins
from tlhub.baseline import UNSEEN_PROBABILITY, fit_baseline, input_values
from tlhub.engine import score_predictions
from tlhub.metrics import load_metrics


def prepared(name: str, data: dict[str, list[Any]], features: Any, columns: list[str], **call: Any) -> Any:
    """A train/test split of ``data`` (stratified, 1/3 test) after the modality's own ``check_data``."""
    import datasets

    modality = plugins.modalities()[name]
    split = datasets.Dataset.from_dict(data, features=features).train_test_split(
        test_size=1 / 3, seed=0, stratify_by_column="label"
    )
    checked = {}
    for key in ("train", "test"):
        checked[key], _ = modality.call("check_data", split=split[key], columns=columns, **call)
    return modality, checked["train"], checked["test"]


def scores(
    modality: Any, train: Any, test: Any, columns: list[str], labels: list[str], **call: Any
) -> dict[str, float]:
    call.setdefault("processor", None)
    predictions = fit_baseline(
        modality, columns, seed=0, train=train, test=test, label_column="label", labels=labels, **call
    )
    assert predictions.logits.shape == (len(test), len(labels)) and predictions.logits.dtype == torch.float32
    assert predictions.references is not None and predictions.references.tolist() == list(test["label"])
    return score_predictions(predictions, load_metrics(["accuracy", "f1"]), labels)


def class_label(names: list[str]) -> Any:
    import datasets

    return datasets.ClassLabel(names=names)


@pytest.mark.parametrize("columns", [["a"], ["a", "b"]])
def test_input_values_are_what_the_encoder_receives(columns: list[str]) -> None:
    import datasets

    received: list[Any] = []

    def encode(values: list[Any]) -> dict[str, Any]:
        received.extend(values)
        return {}

    modality = dataclasses.replace(plugins.modalities()["text"], make_encoder=lambda: encode)
    split = datasets.Dataset.from_dict({"a": ["x", "y"], "b": ["z", "w"], "label": [0, 1]})
    modality.collate(None, None, None, columns, "label")(list(split))
    assert input_values(split, columns) == received


def test_pixel_baseline_learns_colours_from_images_of_any_size_and_mode() -> None:
    import datasets
    import PIL.Image

    rng = np.random.default_rng(0)
    colours = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}
    images, labels = [], []
    for label, rgb in enumerate(colours.values()):
        for _ in range(30):
            h, w = rng.integers(12, 40, size=2)  # resized to the 16x16 thumbnail
            pixels = np.clip(rng.normal(rgb, 60, size=(h, w, 3)), 0, 255).astype(np.uint8)
            image = PIL.Image.fromarray(pixels)
            images.append(image.convert("RGBA") if rng.random() < 0.3 else image)  # converted to RGB
            labels.append(label)
    features = datasets.Features({"image": datasets.Image(), "label": class_label(list(colours))})
    config = tiny_vit_config()
    modality, train, test = prepared("image", {"image": images, "label": labels}, features, ["image"], config=config)

    measured = scores(modality, train, test, ["image"], list(colours), config=config, options=None)
    assert measured["accuracy"] > 0.9, measured

    # Undecoded values ({"bytes", "path"}) give the same pixels as decoded images.
    estimator = modality.call("baseline", columns=["image"], config=config, options=None, seed=0)
    estimator.fit(input_values(train, ["image"]), train["label"])
    undecoded = test.cast_column("image", datasets.Image(decode=False))
    assert isinstance(input_values(undecoded, ["image"])[0], dict)
    np.testing.assert_allclose(
        estimator.predict_proba(input_values(undecoded, ["image"])),
        estimator.predict_proba(input_values(test, ["image"])),
    )


def test_pixel_baseline_reads_scikit_learns_digits() -> None:
    from tlhub_image import load_digits

    digits = load_digits()["train"].train_test_split(test_size=0.25, seed=0, stratify_by_column="label")
    modality = plugins.modalities()["image"]
    labels = [str(d) for d in range(10)]
    measured = scores(
        modality, digits["train"], digits["test"], ["image"], labels, config=tiny_vit_config(), options=None
    )
    assert measured["accuracy"] > 0.9, measured


def test_pixel_baseline_thumbnail_is_the_models_size_up_to_32() -> None:
    from tlhub_image.baseline import thumbnail_side

    assert thumbnail_side(tiny_vit_config(image_size=16)) == 16
    assert thumbnail_side(tiny_vit_config(image_size=224)) == 32


def test_mfcc_baseline_tells_pitches_apart_after_decoding_and_resampling(tmp_path: Path) -> None:
    import datasets
    from transformers import Wav2Vec2FeatureExtractor

    rng = np.random.default_rng(0)
    pitches = {"low": 300, "mid": 800, "high": 2000}
    paths, labels = [], []
    for label, hz in enumerate(pitches.values()):
        for i in range(15):
            rate = 16_000 if i % 3 else 8_000  # every third clip resampled by check_data
            t = np.arange(int(rate * rng.uniform(0.2, 0.5))) / rate
            tone = 0.5 * np.sin(2 * np.pi * hz * rng.uniform(0.9, 1.1) * t) + 0.02 * rng.standard_normal(t.size)
            paths.append(str(write_wav(tmp_path / f"{label}_{i}.wav", tone, rate)))
            labels.append(label)
    # One clip shorter than an MFCC window still gives features.
    paths.append(str(write_wav(tmp_path / "short.wav", 0.5 * np.sin(np.arange(100) / 3), 16_000)))
    labels.append(0)
    features = datasets.Features({"audio": datasets.Audio(), "label": class_label(list(pitches))})
    processor = Wav2Vec2FeatureExtractor(sampling_rate=16_000)
    modality = plugins.modalities()["audio"]
    options = modality.options()  # type: ignore[misc]
    modality, train, test = prepared(
        "audio", {"audio": paths, "label": labels}, features, ["audio"], processor=processor, options=options
    )

    config = tiny_audio_config("wav2vec2")
    measured = scores(
        modality, train, test, ["audio"], list(pitches), config=config, processor=processor, options=options
    )
    assert measured["accuracy"] > 0.9, measured


def texts(words: list[str], noise: list[str], rng: random.Random) -> str:
    """Mostly ``words`` (4 in 5), some ``noise``: learnable, not trivially."""
    return " ".join(rng.choice(noise if noise and rng.random() < 0.2 else words) for _ in range(rng.randint(5, 12)))


def text_features(columns: list[str], labels: list[str]) -> Any:
    import datasets

    return datasets.Features({**{c: datasets.Value("string") for c in columns}, "label": class_label(labels)})


@pytest.fixture(scope="module")
def text_check(tiny_text: Any) -> dict[str, Any]:
    """What the text ``check_data`` needs: the tiny BERT's WordPiece tokenizer and the default options."""
    from transformers import AutoTokenizer

    return {"processor": AutoTokenizer.from_pretrained(tiny_text()), "options": plugins.modalities()["text"].options()}  # type: ignore[misc]


def test_tfidf_baseline_learns_keywords(text_check: dict[str, Any]) -> None:
    rng = random.Random(0)
    data: dict[str, list[Any]] = {"text": [], "label": []}
    for i in range(90):
        own, other = (SPAM_WORDS, HAM_WORDS) if i % 2 else (HAM_WORDS, SPAM_WORDS)
        data["text"].append(texts(own, other, rng))
        data["label"].append(i % 2)
    labels = ["ham", "spam"]
    modality, train, test = prepared("text", data, text_features(["text"], labels), ["text"], **text_check)

    measured = scores(
        modality, train, test, ["text"], labels, config=tiny_text_config("bert"), options=text_check["options"]
    )
    assert measured["accuracy"] > 0.85, measured


def test_tfidf_baseline_reads_sentence_pairs(text_check: dict[str, Any]) -> None:
    from tlhub_text.baseline import SEPARATOR, joined_texts

    rng = random.Random(1)
    data: dict[str, list[Any]] = {"premise": [], "hypothesis": [], "label": []}
    for i in range(90):
        own, other = (SPAM_WORDS, HAM_WORDS) if i % 2 else (HAM_WORDS, SPAM_WORDS)
        data["premise"].append(texts(own, other, rng))
        data["hypothesis"].append(texts(own, other, rng))
        data["label"].append(i % 2)
    columns, labels = ["premise", "hypothesis"], ["no", "yes"]
    modality, train, test = prepared("text", data, text_features(columns, labels), columns, **text_check)
    pairs = input_values(train, columns)
    assert pairs[0] == (train[0]["premise"], train[0]["hypothesis"])
    assert joined_texts(pairs[:1]) == [f"{pairs[0][0]} {SEPARATOR} {pairs[0][1]}"]

    measured = scores(
        modality, train, test, columns, labels, config=tiny_text_config("bert"), options=text_check["options"]
    )
    assert measured["accuracy"] > 0.85, measured


def test_a_class_absent_from_training_gets_a_tiny_probability(text_check: dict[str, Any]) -> None:
    rng = random.Random(2)
    vocabularies = [HAM_WORDS, SPAM_WORDS, ["alpha", "beta", "gamma"], ["delta", "omega"]]
    data: dict[str, list[Any]] = {"text": [], "label": []}
    for i in range(60):
        data["text"].append(texts(vocabularies[i % 4], [], rng))
        data["label"].append(i % 4)
    labels = ["a", "b", "c", "d"]
    modality, train, test = prepared("text", data, text_features(["text"], labels), ["text"], **text_check)
    train = train.filter(lambda example: example["label"] != 3)  # class "d" only in test

    predictions = fit_baseline(
        modality, ["text"], tiny_text_config("bert"), None, None, 0, train, test, "label", labels
    )
    assert predictions.logits.shape == (len(test), 4)
    assert torch.isfinite(predictions.logits).all()
    assert torch.allclose(predictions.logits[:, 3], torch.tensor(math.log(UNSEEN_PROBABILITY)))
    assert torch.allclose(predictions.logits[:, :3].exp().sum(dim=1), torch.ones(len(test)), atol=1e-5)
    measured = score_predictions(predictions, load_metrics(["accuracy", "f1"]), labels)
    assert math.isfinite(measured["loss"])
    assert measured["accuracy"] == pytest.approx(0.75, abs=0.01), measured  # every "d" wrong, the rest right
