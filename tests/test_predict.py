"""Using a finished run: ``tlhub predict`` / ``tlhub.load`` against ``transformers.pipeline`` for each
modality (LoRA too), ``tlhub eval`` against the run's own test metrics, the run's test report, and the
errors of both commands."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

import tlhub
from tests.conftest import digits_recipe, sms_recipe, tones_recipe, write_sms_tsv, write_tones
from tests.test_cli_errors import assert_refused
from tlhub.recipe import Recipe


@pytest.fixture(scope="module")
def image_runs(tmp_path_factory: pytest.TempPathFactory, tiny_vit: Path) -> dict[str, Path]:
    runs = {}
    for strategy in ("full", "lora"):
        out = tmp_path_factory.mktemp("predict-image") / strategy
        recipe = digits_recipe(tiny_vit, out, tuning={"strategy": strategy}, train={"epochs": 2, "learning_rate": 1e-2})
        runs[strategy] = tlhub.run(Recipe.model_validate(recipe)).output_dir
    return runs


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory: pytest.TempPathFactory, image_runs: dict[str, Path]) -> Path:
    """The run's own test split as PNG files in class-named folders (the layout of `imagefolder`)."""
    from tlhub.data import load_splits
    from tlhub.plugins import sources

    recipe = Recipe.model_validate(json.loads((image_runs["full"] / "run.json").read_text())["recipe"])
    test = load_splits(recipe.data, sources()).test
    folder = tmp_path_factory.mktemp("digits-png")
    names = test.features["label"].names
    for i, example in enumerate(test):
        (folder / names[example["label"]]).mkdir(exist_ok=True)
        example["image"].save(folder / names[example["label"]] / f"{i:04d}.png")
    return folder


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def pipeline_of(task: str, run: Path) -> Any:
    from transformers import pipeline

    return pipeline(task, model=str(run))


@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_image_predictions_equal_the_pipeline(
    cli, image_runs: dict[str, Path], digits_folder: Path, tmp_path: Path, strategy: str
) -> None:
    out = tmp_path / "preds.csv"
    result = cli("predict", str(image_runs[strategy]), str(digits_folder), "--top-k", "3", "--output", str(out))
    assert result.exit_code == 0, result.output
    rows = read_csv(out)
    files = sorted(str(p) for p in digits_folder.rglob("*.png"))
    assert [r["input"] for r in rows] == files
    expected = pipeline_of("image-classification", image_runs[strategy])(files, top_k=1)
    assert [r["label"] for r in rows] == [e[0]["label"] for e in expected]
    assert [float(r["score"]) for r in rows] == pytest.approx([e[0]["score"] for e in expected], abs=1e-4)
    assert all(len(r["top_k"].split(";")) == 3 for r in rows)


def test_eval_on_a_labelled_folder_gives_the_runs_test_metrics(
    cli, image_runs: dict[str, Path], digits_folder: Path, tmp_path: Path
) -> None:
    run = image_runs["full"]
    result = cli("eval", str(run), "--data", str(digits_folder), "--output", str(tmp_path / "report"))
    assert result.exit_code == 0, result.output
    scored = json.loads((tmp_path / "report" / "metrics.json").read_text())
    own = json.loads((run / "metrics.json").read_text())["test"]
    assert scored["examples"] == own["examples"]
    assert scored["accuracy"] == own["accuracy"]
    assert scored["loss"] == pytest.approx(own["loss"], rel=1e-4)
    with Image.open(tmp_path / "report" / "confusion_matrix.png") as picture:
        assert picture.format == "PNG" and min(picture.size) > 200


def test_eval_of_the_runs_own_split_repeats_its_report(cli, image_runs: dict[str, Path], tmp_path: Path) -> None:
    run = image_runs["full"]
    result = cli("eval", str(run), "--split", "test", "--output", str(tmp_path / "again"))
    assert result.exit_code == 0, result.output
    for name in ("metrics.json", "per_class.csv", "confusion_matrix.csv", "mistakes.csv"):
        assert (tmp_path / "again" / name).read_text() == (run / "eval" / "test" / name).read_text(), name


def test_the_run_writes_its_test_report_and_the_card_shows_it(image_runs: dict[str, Path]) -> None:
    run = image_runs["full"]
    report = run / "eval" / "test"
    metrics = json.loads((run / "metrics.json").read_text())["test"]
    matrix = read_csv(report / "confusion_matrix.csv")
    counts = [[int(v) for k, v in row.items() if k != "true \\ predicted"] for row in matrix]
    assert sum(map(sum, counts)) == metrics["examples"]
    assert sum(counts[i][i] for i in range(len(counts))) / metrics["examples"] == pytest.approx(metrics["accuracy"])
    mistakes = read_csv(report / "mistakes.csv")
    assert all(m["true"] != m["predicted"] for m in mistakes)
    assert [float(m["score"]) for m in mistakes] == sorted((float(m["score"]) for m in mistakes), reverse=True)
    per_class = read_csv(report / "per_class.csv")
    assert [p["label"] for p in per_class] == [str(d) for d in range(10)]
    card = (run / "README.md").read_text()
    assert "](eval/test/confusion_matrix.png)" in card and "](curves.png)" in card
    from huggingface_hub import ModelCard

    results = ModelCard(card).data.eval_results
    assert {r.metric_type: r.metric_value for r in results}["accuracy"] == round(metrics["accuracy"], 4)


def test_eval_refuses_a_label_the_model_does_not_know(cli, image_runs: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "data"
    for label in ("3", "cat"):
        (folder / label).mkdir(parents=True)
        Image.new("L", (8, 8)).save(folder / label / "a.png")
    result = cli("eval", str(image_runs["full"]), "--data", str(folder))
    assert_refused(result, "'cat'", "the data's labels: 3, cat", "the model's: 0, 1, 2")
    assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1
    assert not (image_runs["full"] / "eval" / "data-train").exists()


def test_python_load_predicts_paths_and_images(image_runs: dict[str, Path], digits_folder: Path) -> None:
    model = tlhub.load(image_runs["full"])
    path = sorted(digits_folder.rglob("*.png"))[0]
    with Image.open(path) as image:
        by_path, by_image = model.predict([str(path), image.copy()], top_k=2)
    assert by_path.label == by_image.label and by_path.score == pytest.approx(by_image.score)
    assert by_path.input == str(path) and by_image.input == "#1"
    assert by_path.top_k[0][0] == by_path.label and len(by_path.top_k) == 2


def test_an_unreadable_input_fails_or_is_skipped(cli, image_runs: dict[str, Path], tmp_path: Path) -> None:
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.new("L", (8, 8), 128).save(good)
    bad.write_bytes(b"not a png")
    assert_refused(cli("predict", str(image_runs["full"]), str(good), str(bad)), str(bad))
    out = tmp_path / "preds.jsonl"
    result = cli("predict", str(image_runs["full"]), str(good), str(bad), "--on-error", "skip", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "skipped 1 input" in result.output and f"skipped: data: image file '{bad}' cannot be read" in result.output
    assert [json.loads(line)["input"] for line in out.read_text().splitlines()] == [str(good)]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["predict", "{run}", "nowhere/*.png"], "matches no file"),
        (["predict", "{run}", "missing.png"], "does not exist"),
        (["predict", "{run}", "{png}", "--output", "preds.txt"], "--output"),
        (["predict", "{tmp}", "{png}"], "not a tlhub run directory"),
        (["eval", "{run}", "--data", "{png}"], "--data"),
        (["eval", "{run}", "--split", "holdout"], "--split"),
        (["eval", "{run}", "--data", "{tmp}", "--recipe", "r.yaml"], "--data and --recipe"),
    ],
)
def test_command_errors(cli, image_runs: dict[str, Path], tmp_path: Path, args: list[str], words: str) -> None:
    png = tmp_path / "one.png"
    Image.new("L", (8, 8)).save(png)
    filled = [a.format(run=image_runs["full"], png=png, tmp=tmp_path) for a in args]
    assert_refused(cli(*filled), words)


def test_an_unfinished_run_is_refused(cli, image_runs: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    record = json.loads((image_runs["full"] / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "status": "running"}))
    assert_refused(cli("predict", str(run), "x.png"), "status 'running'")


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory, tiny_text: Any) -> Path:
    folder = tmp_path_factory.mktemp("predict-text")
    recipe = sms_recipe(tiny_text("bert"), write_sms_tsv(folder / "sms.tsv"), folder / "run")
    return tlhub.run(Recipe.model_validate(recipe)).output_dir


TEXTS = ["win cash prize free call", "see you at lunch ok thanks", "free txt claim award", "mum home later"]


def test_text_predictions_from_lines_and_a_csv_column_equal_the_pipeline(cli, text_run: Path, tmp_path: Path) -> None:
    lines = tmp_path / "messages.txt"
    lines.write_text("\n".join(TEXTS) + "\n\n")  # blank lines are not inputs
    table = tmp_path / "messages.csv"
    table.write_text("id,message\n" + "".join(f"{i},{t}\n" for i, t in enumerate(TEXTS)))
    expected = pipeline_of("text-classification", text_run)(TEXTS)
    for inputs in ([str(lines)], [str(table), "--column", "message"]):
        out = tmp_path / "preds.csv"
        result = cli("predict", str(text_run), *inputs, "-o", str(out))
        assert result.exit_code == 0, result.output
        rows = read_csv(out)
        assert [r["input"] for r in rows] == TEXTS
        assert [r["label"] for r in rows] == [e["label"] for e in expected]
        assert [float(r["score"]) for r in rows] == pytest.approx([e["score"] for e in expected], abs=1e-4)
    assert_refused(cli("predict", str(text_run), str(table), "--column", "text"), "column 'text'")


def test_a_printed_table_for_a_few_inputs(cli, text_run: Path, tmp_path: Path) -> None:
    lines = tmp_path / "messages.txt"
    lines.write_text("\n".join(TEXTS))
    result = cli("predict", str(text_run), str(lines), "--top-k", "2")
    assert result.exit_code == 0, result.output
    table = [line for line in result.output.splitlines() if line.startswith(tuple(TEXTS))]
    assert len(table) == 4 and all(("ham" in line and "spam" in line) for line in table)


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory: pytest.TempPathFactory, tiny_audio: Any) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("predict-audio")
    clips = write_tones(folder / "clips")
    recipe = tones_recipe(tiny_audio(), clips, folder / "run", model={"options": {"max_seconds": 1.0}})
    return tlhub.run(Recipe.model_validate(recipe)).output_dir, clips


def test_audio_predictions_equal_the_pipeline(cli, audio_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, clips = audio_run
    out = tmp_path / "preds.csv"
    result = cli("predict", str(run), str(clips), "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = read_csv(out)
    files = sorted(str(p) for p in clips.glob("*.wav"))
    assert [r["input"] for r in rows] == files
    expected = pipeline_of("audio-classification", run)(files, top_k=1)
    agree = sum(r["label"] == e[0]["label"] for r, e in zip(rows, expected, strict=True))
    # The pipeline resamples the 8 kHz files with FFmpeg, tlhub (as in training) with torchaudio.
    assert agree == len(files)
    assert [float(r["score"]) for r in rows] == pytest.approx([e[0]["score"] for e in expected], abs=2e-3)


def test_predictions_do_not_depend_on_the_batch(image_runs: dict[str, Path], digits_folder: Path) -> None:
    model = tlhub.load(image_runs["full"])
    files = [str(p) for p in sorted(digits_folder.rglob("*.png"))[:10]]
    one = [p.score for p in model.predict(files, batch_size=1)]
    many = [p.score for p in model.predict(files, batch_size=10)]
    assert torch.allclose(torch.tensor(one), torch.tensor(many), atol=1e-5)
