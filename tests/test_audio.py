"""The audio plugin on tiny random wav2vec2-family models and synthetic tones: strategies, saved outputs,
decoding and resampling, padding, bad audio files, and the audio sources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import tlhub
from tests.conftest import tones_recipe, write_recipe, write_tones, write_wav
from tests.test_cli_errors import assert_refused
from tlhub.recipe import Recipe


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tones(tmp_path_factory.mktemp("tones") / "clips")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_audio: Any, tones: Path) -> dict[str, Any]:
    """One short run per strategy on a tiny wav2vec2, shared by the tests below."""
    results = {}
    for strategy, tuning in (
        ("full", {"strategy": "full", "full": {"freeze": ["wav2vec2.feature_extractor"]}}),
        ("head", {"strategy": "head"}),
        ("lora", {"strategy": "lora"}),
    ):
        out = tmp_path_factory.mktemp("audio-runs") / strategy
        recipe = Recipe.model_validate(tones_recipe(tiny_audio(), tones, out, tuning=tuning))
        results[strategy] = (recipe, tlhub.run(recipe))
    return results


def predict(model: torch.nn.Module, checkpoint: Path, clips: list[np.ndarray]) -> torch.Tensor:
    from transformers import AutoFeatureExtractor

    extractor = AutoFeatureExtractor.from_pretrained(checkpoint)
    model.eval()
    with torch.no_grad():
        inputs = extractor(clips, sampling_rate=16000, padding=True, return_tensors="pt")
        return model(**inputs).logits.argmax(-1)


def clips(seconds: float = 0.3) -> list[np.ndarray]:
    t = np.arange(int(16000 * seconds)) / 16000
    return [(0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32) for hz in (300, 1500, 320, 1450)]


def test_full_learns_the_tones_and_keeps_the_feature_encoder(runs: dict[str, Any], tiny_audio: Any) -> None:
    from safetensors.torch import load_file

    _, result = runs["full"]
    assert result.metrics["test"]["accuracy"] >= 0.8, result.metrics
    before, after = load_file(tiny_audio() / "model.safetensors"), load_file(result.output_dir / "model.safetensors")
    conv = [k for k in before if k.startswith("wav2vec2.feature_extractor.")]
    assert conv and all(torch.equal(before[k], after[k]) for k in conv)
    assert not torch.equal(
        before["wav2vec2.encoder.layers.0.attention.q_proj.weight"],
        after["wav2vec2.encoder.layers.0.attention.q_proj.weight"],
    )


def test_head_leaves_every_non_head_tensor_bit_identical(runs: dict[str, Any], tiny_audio: Any) -> None:
    from safetensors.torch import load_file

    _, result = runs["head"]
    before, after = load_file(tiny_audio() / "model.safetensors"), load_file(result.output_dir / "model.safetensors")
    shared = [k for k in before if not k.startswith(("projector.", "classifier."))]
    assert len(shared) > 20
    for key in shared:
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["classifier.weight"][:2], after["classifier.weight"])


def test_lora_adapter_reloads_to_the_same_predictions(runs: dict[str, Any]) -> None:
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForAudioClassification

    _, result = runs["lora"]
    out = result.output_dir
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter["modules_to_save"] == ["projector", "classifier"]
    assert set(adapter["target_modules"]) == {"q_proj", "v_proj"}
    base = AutoModelForAudioClassification.from_pretrained(
        adapter["base_model_name_or_path"], config=AutoConfig.from_pretrained(out), ignore_mismatched_sizes=True
    )
    reloaded = predict(PeftModel.from_pretrained(base, out / "adapter"), out, clips())
    merged = predict(AutoModelForAudioClassification.from_pretrained(out), out, clips())
    assert len(merged.unique()) > 1, "a model predicting one class would make this test vacuous"
    assert torch.equal(reloaded, merged)


@pytest.mark.parametrize("strategy", ["full", "head", "lora"])
def test_pipeline_classifies_a_wav_file(runs: dict[str, Any], strategy: str, tones: Path) -> None:
    from transformers import pipeline

    _, result = runs[strategy]
    classify = pipeline("audio-classification", model=str(result.output_dir))
    (best, *_) = classify(str(tones / "high_0.wav"))  # an 8 kHz file: the pipeline resamples it
    assert best["label"] in {"low", "high"}


def test_card_records_resampling_and_cropping(runs: dict[str, Any]) -> None:
    _, result = runs["full"]
    card = (result.output_dir / "README.md").read_text()
    assert "clips at 8000 Hz resampled to 16000 Hz (torchaudio)" in card
    assert "clips longer than model.options.max_seconds 0.5 s cropped" in card


@pytest.mark.parametrize("model_type", ["hubert", "wavlm"])
def test_other_wav2vec2_families(tiny_audio: Any, tones: Path, tmp_path: Path, model_type: str) -> None:
    from transformers import pipeline

    recipe = tones_recipe(tiny_audio(model_type), tones, tmp_path / "out", train={"epochs": 1})
    result = tlhub.run(Recipe.model_validate(recipe))
    assert result.metrics["test"]["examples"] == 12
    (best, *_) = pipeline("audio-classification", model=str(result.output_dir))(str(tones / "low_1.wav"))
    assert best["label"] in {"low", "high"}


def test_padded_batches_give_the_unpadded_logits(tiny_audio: Any) -> None:
    """With a layer-norm feature encoder and the attention mask, padding changes nothing."""
    from tlhub_audio import make_encoder, new_processor
    from transformers import AutoModelForAudioClassification

    model = AutoModelForAudioClassification.from_pretrained(tiny_audio()).eval()
    encode = make_encoder(processor=new_processor(config=model.config))
    short, long = clips(0.2)[0], clips(0.5)[1]
    with torch.no_grad():
        alone = model(**encode([short])).logits
        batched = model(**encode([short, long])).logits[:1]
    assert torch.allclose(alone, batched, atol=1e-5)


# --- bad audio ------------------------------------------------------------------------------------


@pytest.fixture
def audio_recipe(tmp_path: Path, tiny_audio: Any):
    """Tones plus the given extra files; write a recipe on them (with section updates); return its path."""

    def make(extra: dict[str, Any] | None = None, options: dict[str, Any] | None = None, **sections: Any) -> Path:
        folder = write_tones(tmp_path / "clips", per_class=12)
        for name, samples in (extra or {}).items():
            if isinstance(samples, bytes):
                (folder / name).write_bytes(samples)
            else:
                write_wav(folder / name, samples)
        recipe = tones_recipe(tiny_audio(), folder, tmp_path / "out", train={"epochs": 1}, **sections)
        recipe["model"]["options"].update(options or {})
        return write_recipe(tmp_path / "r.yaml", recipe)

    return make


def test_a_file_that_does_not_decode_is_named_or_skipped(cli, audio_recipe, tmp_path: Path) -> None:
    broken = {"low_broken.wav": b"RIFF\x00\x00\x00\x00WAVEnot audio at all"}
    assert_refused(
        cli("run", audio_recipe(broken)),
        f"audio file '{tmp_path / 'clips' / 'low_broken.wav'}' cannot be decoded",
        "model.options.bad_audio: skip",
        output_dir=tmp_path / "out",
    )
    result = tlhub.run(audio_recipe(broken, options={"bad_audio": "skip"}))
    assert "1 clips skipped (model.options.bad_audio: skip)" in (result.output_dir / "README.md").read_text()


def test_a_silent_clip_is_refused(cli, audio_recipe, tmp_path: Path) -> None:
    assert_refused(
        cli("run", audio_recipe({"high_silent.wav": np.zeros(4000)})),
        f"audio file '{tmp_path / 'clips' / 'high_silent.wav'}' is silent",
        output_dir=tmp_path / "out",
    )


def test_an_empty_clip_is_refused(cli, audio_recipe, tmp_path: Path) -> None:
    assert_refused(
        cli("run", audio_recipe({"high_empty.wav": np.zeros(0)})),
        "high_empty.wav' is empty",
        output_dir=tmp_path / "out",
    )


def test_a_stereo_file_is_mixed_down_and_recorded(audio_recipe, tmp_path: Path) -> None:
    t = np.arange(3000) / 8000
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 300 * t), 0.3 * np.sin(2 * np.pi * 310 * t)])
    result = tlhub.run(audio_recipe({"low_stereo.wav": stereo}))
    assert "1 multi-channel clips mixed down to mono" in (result.output_dir / "README.md").read_text()


def test_a_folder_with_no_audio_files(cli, audio_recipe, tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no audio here")
    data = {"data_files": {"train": str(tmp_path / "notes" / "*")}}
    assert_refused(
        cli("run", audio_recipe(data=data)),
        "match no audio files (.wav, .flac",
        output_dir=tmp_path / "out",
    )


def test_a_pattern_that_matches_nothing(cli, audio_recipe, tmp_path: Path) -> None:
    assert_refused(
        cli("run", audio_recipe(data={"data_files": {"train": str(tmp_path / "nowhere" / "*.wav")}})),
        "data.data_files:",
        "nowhere",
        output_dir=tmp_path / "out",
    )


def test_labels_that_the_file_names_do_not_give(cli, audio_recipe, tmp_path: Path) -> None:
    path = audio_recipe({"mystery.wav": 0.5 * np.ones(2000)}, data={"load_options": {"label_pattern": "^(low|high)_"}})
    assert_refused(
        cli("run", path),
        "data.load_options.label_pattern: file name 'mystery.wav'",
        "does not match '^(low|high)_', so its label cannot be read",
        output_dir=tmp_path / "out",
    )


# --- input types: audio against image and text, both directions --------------------------------------


def test_image_checkpoint_with_audio_data(cli, audio_recipe, tiny_vit: Path, tmp_path: Path) -> None:
    path = audio_recipe(model={"plugin": "image", "checkpoint": str(tiny_vit), "options": {}})
    assert_refused(
        cli("run", path),
        "(model_type 'vit') was pretrained on images, but data column 'audio' holds audio",
        "use plugin audio with a checkpoint of type hubert, wav2vec2, wavlm",
        output_dir=tmp_path / "out",
    )


def test_text_checkpoint_with_audio_data(cli, audio_recipe, tiny_text: Any, tmp_path: Path) -> None:
    path = audio_recipe(model={"plugin": "text", "checkpoint": str(tiny_text("bert")), "options": {}})
    assert_refused(
        cli("run", path),
        "(model_type 'bert') was pretrained on text, but data column 'audio' holds audio",
        output_dir=tmp_path / "out",
    )


def test_audio_checkpoint_with_text_data(cli, tiny_audio: Any, tmp_path: Path) -> None:
    from tests.conftest import sms_recipe, write_sms_tsv

    recipe = sms_recipe(tiny_audio(), write_sms_tsv(tmp_path / "sms.tsv"), tmp_path / "out")
    recipe["model"] = {"plugin": "audio", "checkpoint": str(tiny_audio())}
    assert_refused(
        cli("run", write_recipe(tmp_path / "r.yaml", recipe)),
        "(model_type 'wav2vec2') was pretrained on audio, but data column 'text' holds text",
        "use plugin text with a checkpoint of type bert",
        output_dir=tmp_path / "out",
    )


def test_text_plugin_with_an_audio_checkpoint_and_audio_data(cli, audio_recipe, tiny_audio: Any, tmp_path) -> None:
    path = audio_recipe(model={"plugin": "text", "checkpoint": str(tiny_audio()), "options": {}})
    assert_refused(
        cli("run", path),
        "model.plugin 'text' reads text, but data column 'audio' holds audio; use plugin audio",
        output_dir=tmp_path / "out",
    )


# --- sources ----------------------------------------------------------------------------------------

needs_espeak = pytest.mark.skipif(
    __import__("shutil").which("espeak-ng") is None,
    reason="the espeak-ng program is missing (apt-get install espeak-ng)",
)


@needs_espeak
def test_espeak_words_synthesises_a_described_corpus_once(tmp_path: Path) -> None:
    from tlhub_audio.espeak import load_espeak_words

    from tlhub.recipe import DataSection

    options = {"words": ["apple", "water", "garden"], "clips_per_word": 4, "folder": str(tmp_path / "corpus")}
    section = DataSection(
        source="espeak_words", input_column="audio", load_options=options, test_fraction=0.5, validation_fraction=0.5
    )
    train = load_espeak_words(section)["train"]
    assert len(train) == 12 and sorted(set(train["label"])) == ["apple", "garden", "water"]
    assert "12 clips of 3 English words" in train.info.description and "eSpeak NG" in train.info.description
    corpus = json.loads((tmp_path / "corpus" / "corpus.json").read_text())
    assert {row["rate"] for row in corpus["rows"]} == {8000, 16000}
    assert len({(row["voice"], row["speed"], row["pitch"]) for row in corpus["rows"] if row["word"] == "apple"}) == 4
    stamp = (tmp_path / "corpus" / "apple" / "apple_000.wav").stat().st_mtime_ns
    load_espeak_words(section)  # built once: a second load reads the folder
    assert (tmp_path / "corpus" / "apple" / "apple_000.wav").stat().st_mtime_ns == stamp


def test_espeak_words_refuses_digit_names(tmp_path: Path) -> None:
    from tlhub_audio.espeak import load_espeak_words

    from tlhub.errors import DataError
    from tlhub.recipe import DataSection

    section = DataSection(
        source="espeak_words",
        input_column="audio",
        load_options={"words": ["apple", "won"]},
        test_fraction=0.5,
        validation_fraction=0.5,
    )
    with pytest.raises(DataError, match=r"data\.load_options\.words: won sound like digit names"):
        load_espeak_words(section)
