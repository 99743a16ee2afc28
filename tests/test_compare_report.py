"""The summary of a compare grid: the numbers, the Markdown and CSV, the plot and the verdict."""

from __future__ import annotations

import csv
import io
import statistics

import pytest

from tests.test_imports import HEAVY, imported_modules
from tlhub.compare_report import CellResult, csv_text, markdown, plot, summarize, verdict

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLASSES = 10
WHOLE_SPLIT = 1437


def grid(scores: dict[tuple[str, int | None], list[float]]) -> list[CellResult]:
    """One cell per seed from ``{(strategy, per_class): [accuracy of seed 0, seed 1, ...]}``."""
    cells = []
    for (strategy, per_class), accuracies in scores.items():
        for seed, accuracy in enumerate(accuracies):
            baseline = strategy == "baseline"
            cells.append(
                CellResult(
                    strategy=strategy,
                    per_class=per_class,
                    train_examples=WHOLE_SPLIT if per_class is None else per_class * CLASSES,
                    seed=seed,
                    metrics={"accuracy": accuracy} if baseline else {"accuracy": accuracy, "loss": 1 - accuracy},
                    trainable_parameters=None if baseline else 7_690,
                    wall_seconds=2.0 + seed,
                    peak_memory_mb=None if baseline else 500.0 + 10 * seed,
                )
            )
    return cells


def test_mean_and_sample_std_over_seeds() -> None:
    [row] = summarize(grid({("head", 5): [0.5, 0.6, 0.7]}), ["accuracy", "loss"])
    assert (row.strategy, row.per_class, row.seeds, row.train_examples) == ("head", 5, 3, 50)
    assert row.mean["accuracy"] == pytest.approx(0.6)
    assert row.std["accuracy"] == pytest.approx(statistics.stdev([0.5, 0.6, 0.7]))  # n - 1: the sample's
    assert row.std["accuracy"] == pytest.approx(0.1)
    assert row.mean["loss"] == pytest.approx(0.4)
    assert (row.trainable_parameters, row.wall_seconds, row.peak_memory_mb) == (7_690, 3.0, 520.0)


def test_one_seed_has_no_spread_and_a_missing_metric_is_absent() -> None:
    [row] = summarize(grid({("baseline", 2): [0.8]}), ["accuracy", "loss"])
    assert (row.seeds, row.mean, row.std) == (1, {"accuracy": 0.8}, {"accuracy": 0.0})
    assert (row.trainable_parameters, row.peak_memory_mb) == (None, None)


def test_rows_follow_the_strategies_as_first_seen_and_sizes_ascending_whole_split_last() -> None:
    cells = grid({("lora", None): [0.9], ("lora", 20): [0.8], ("scratch", 5): [0.1], ("lora", 2): [0.5]})
    order = [(row.strategy, row.per_class) for row in summarize(cells, ["accuracy"])]
    assert order == [("lora", 2), ("lora", 20), ("lora", None), ("scratch", 5)]
    explicit = summarize(cells, ["accuracy"], strategies=["scratch", "head", "lora"])
    assert [(row.strategy, row.per_class) for row in explicit] == [
        ("scratch", 5),
        ("lora", 2),
        ("lora", 20),
        ("lora", None),
    ]


def test_a_repeated_cell_is_refused() -> None:
    cells = grid({("head", 5): [0.5]})
    with pytest.raises(ValueError, match="two results for strategy 'head', size 5, seed 0"):
        summarize(cells + cells, ["accuracy"])


def test_markdown_labels_the_whole_split_and_bolds_the_winner_at_each_size() -> None:
    rows = summarize(
        grid({("head", 2): [0.6, 0.7], ("head", None): [0.8, 0.8], ("full", 2): [0.4, 0.5], ("full", None): [0.95]}),
        ["accuracy", "loss"],
    )
    text = markdown(rows, ["accuracy", "loss"], "accuracy")
    lines = text.splitlines()
    assert lines[0] == (
        "| strategy | examples per class | accuracy (mean ± std) | loss (mean ± std) | trainable parameters "
        "| wall time per cell (s) | peak memory (MB) |"
    )
    assert "| head | 2 | **0.6500 ± 0.0707** | 0.3500 ± 0.0707 | 7,690 | 2.5 | 510 |" in lines, text
    assert "| full | 2 | 0.4500 ± 0.0707 |" in text, text
    assert "| full | all (1,437) | **0.9500 ± 0.0000** |" in text, text
    assert "| head | all (1,437) | 0.8000 ± 0.0000 |" in text, text
    assert text.count("**") == 4, text  # one winner per size, only in the accuracy column


def test_markdown_shows_dashes_for_what_the_baseline_lacks() -> None:
    rows = summarize(grid({("baseline", 5): [0.7]}), ["accuracy", "loss"])
    assert "| baseline | 5 | 0.7000 ± 0.0000 | - | - | 2.0 | - |" in markdown(rows, ["accuracy", "loss"], "accuracy")


def test_csv_parses_back_to_the_same_numbers() -> None:
    rows = summarize(grid({("head", 2): [0.61, 0.73, 0.7], ("baseline", None): [0.5]}), ["accuracy", "loss"])
    parsed = list(csv.DictReader(io.StringIO(csv_text(rows, ["accuracy", "loss"]))))
    assert list(parsed[0]) == [
        "strategy",
        "per_class",
        "train_examples",
        "seeds",
        "accuracy_mean",
        "accuracy_std",
        "loss_mean",
        "loss_std",
        "trainable_parameters",
        "wall_seconds",
        "peak_memory_mb",
    ]
    head, baseline = parsed
    assert (head["strategy"], int(head["per_class"]), int(head["seeds"])) == ("head", 2, 3)
    assert float(head["accuracy_mean"]) == rows[0].mean["accuracy"]  # exactly: full precision
    assert float(head["accuracy_std"]) == rows[0].std["accuracy"]
    assert float(head["loss_std"]) == rows[0].std["loss"]
    assert (int(head["trainable_parameters"]), float(head["peak_memory_mb"])) == (7_690, 520.0)
    assert (baseline["per_class"], float(baseline["train_examples"])) == ("", WHOLE_SPLIT)
    assert (baseline["loss_mean"], baseline["trainable_parameters"], baseline["peak_memory_mb"]) == ("", "", "")


@pytest.mark.parametrize("seeds", [1, 3])
def test_the_plot_is_a_png(seeds: int) -> None:
    def scores(mean: float) -> list[float]:
        return [mean + 0.01 * seed for seed in range(seeds)]

    rows = summarize(
        grid(
            {
                **{("head", n): scores(0.5 + n / 100) for n in (2, 5, 20)},
                ("head", None): scores(0.9),
                ("scratch", 2): scores(0.2),  # a strategy at one size: an error bar, not a band
                **{("baseline", n): scores(0.4) for n in (2, 5, 20)},
            }
        ),
        ["accuracy"],
    )
    png = plot(rows, "accuracy", "digits: strategies by size", classes=CLASSES)
    assert png.startswith(PNG_SIGNATURE)


def test_the_plot_of_nothing_is_still_a_png() -> None:
    assert plot([], "accuracy", "empty", classes=CLASSES).startswith(PNG_SIGNATURE)


def test_verdict_names_the_winner_at_each_size() -> None:
    rows = summarize(
        grid(
            {
                ("scratch", 2): [0.20, 0.21],
                ("scratch", 5): [0.30, 0.31],
                ("scratch", 20): [0.50, 0.51],
                ("scratch", None): [0.60, 0.61],
                ("head", 2): [0.70, 0.71],
                ("head", 5): [0.75, 0.76],
                ("head", 20): [0.80, 0.81],
                ("head", None): [0.82, 0.83],
                ("full", 2): [0.40, 0.41],
                ("full", 5): [0.60, 0.61],
                ("full", 20): [0.90, 0.91],
                ("full", None): [0.95, 0.96],
                ("baseline", 2): [0.35, 0.36],
                ("baseline", 5): [0.45, 0.46],
                ("baseline", 20): [0.55, 0.56],
                ("baseline", None): [0.65, 0.66],
            }
        ),
        ["accuracy"],
    )
    assert verdict(rows, "accuracy") == (
        "On test accuracy, head wins at 2 and 5 examples per class; full wins from 20 examples per class on. "
        "Pretrained (best of head/full) beats scratch at every size; the classical baseline is beaten at every size."
    )


def test_verdict_calls_a_difference_within_the_spread_a_tie() -> None:
    rows = summarize(
        grid(
            {
                ("lora", 2): [0.60, 0.70],  # 0.65 ± 0.071
                ("head", 2): [0.62, 0.64],  # 0.63 ± 0.014: behind by less than the spread
                ("scratch", 2): [0.10, 0.11],
                ("lora", 5): [0.90, 0.91],
                ("head", 5): [0.70, 0.71],
                ("scratch", 5): [0.85, 0.95],  # 0.90 ± 0.071: level with lora within the spread
            }
        ),
        ["accuracy"],
    )
    assert verdict(rows, "accuracy") == (
        "On test accuracy, lora and head tie (within the spread over seeds) at 2 examples per class; "
        "lora and scratch tie (within the spread over seeds) at 5 examples per class. "
        "Pretrained (best of lora/head) beats scratch at 2 examples per class "
        "and ties with scratch at 5 examples per class."
    )


def test_verdict_says_where_the_baseline_beats_every_deep_strategy() -> None:
    rows = summarize(
        grid(
            {
                ("baseline", 2): [0.80, 0.81],
                ("head", 2): [0.50, 0.51],
                ("full", 2): [0.40, 0.41],
                ("baseline", 5): [0.80, 0.81],
                ("head", 5): [0.79, 0.84],  # 0.815 ± 0.035: ahead by less than the spread
                ("baseline", 50): [0.85, 0.86],
                ("head", 50): [0.95, 0.96],
                ("baseline", None): [0.85, 0.86],
                ("head", None): [0.97, 0.98],
            }
        ),
        ["accuracy"],
    )
    assert verdict(rows, "accuracy") == (
        "On test accuracy, the classical baseline wins at 2 examples per class; "
        "head and the classical baseline tie (within the spread over seeds) at 5 examples per class; "
        "head wins from 50 examples per class on. "
        "The classical baseline beats every deep strategy at 2 examples per class, "
        "ties with the best deep strategy at 5 examples per class "
        "and is beaten from 50 examples per class on."
    )


def test_verdict_with_one_seed_says_there_is_no_spread() -> None:
    rows = summarize(grid({("head", None): [0.9], ("lora", None): [0.8]}), ["accuracy"])
    assert verdict(rows, "accuracy") == (
        "On test accuracy, head wins with the whole training split (one seed per cell: no spread to judge ties by)."
    )
    assert verdict([], "accuracy") == "No accuracy to compare."


def test_importing_the_module_imports_nothing_heavy() -> None:
    heavy = sorted(imported_modules("-c", "import tlhub.compare_report") & set(HEAVY))
    assert heavy == [], heavy
