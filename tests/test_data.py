"""Reading data: rows lost to a stray quote are an error, not a smaller dataset."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import HAM_WORDS, SPAM_WORDS, sms_recipe, write_recipe
from tests.test_cli_errors import assert_refused


def reviews_with_a_stray_quote(path: Path, rows: int = 60) -> Path:
    """``label<TAB>text`` lines; two texts hold a stray quote, as real reviews do: the csv reader reads the
    lines between them as one quoted field."""
    lines = [
        f"{'spam' if i % 3 == 0 else 'ham'}\t{' '.join((SPAM_WORDS if i % 3 == 0 else HAM_WORDS)[:4])}"
        for i in range(rows)
    ]
    lines[10] = 'ham\t"see you at lunch'
    lines[20] = 'ham\tsee you at "lunch"'
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_stray_quote_that_swallows_lines_is_refused(cli, tiny_text, tmp_path: Path) -> None:
    data = reviews_with_a_stray_quote(tmp_path / "reviews.tsv")
    recipe = sms_recipe(tiny_text("bert"), data, tmp_path / "out")
    recipe["data"]["load_options"] = {"sep": "\t", "column_names": ["label", "text"]}  # default quoting
    path = write_recipe(tmp_path / "r.yaml", recipe)
    assert_refused(
        cli("validate", path),
        "data.data_files: the train file(s)",
        "hold 60 non-empty lines but were read as 50 rows",
        "data.load_options.quoting: 3",
        output_dir=tmp_path / "out",
    )
    recipe["data"]["load_options"]["quoting"] = 3  # quotes are text: every line a row
    result = cli("validate", write_recipe(path, recipe))
    assert result.exit_code == 0, result.output
    assert "train 36" in result.output  # 60 rows: 15 test, 9 validation, 36 train


def test_records_that_span_lines_can_be_accepted(cli, tiny_text, tmp_path: Path) -> None:
    data = tmp_path / "multi.csv"
    rows = [
        f'{"spam" if i % 2 else "ham"},"{" ".join(SPAM_WORDS[:3] if i % 2 else HAM_WORDS[:3])}\nmore"'
        for i in range(40)
    ]
    data.write_text("label,text\n" + "\n".join(rows) + "\n")
    recipe = sms_recipe(tiny_text("bert"), data, tmp_path / "out")
    recipe["data"]["load_options"] = {}
    path = write_recipe(tmp_path / "r.yaml", recipe)
    assert_refused(cli("validate", path), "hold 80 non-empty lines but were read as 40 rows", "data.lines_per_row: any")
    recipe["data"]["lines_per_row"] = "any"
    result = cli("validate", write_recipe(path, recipe))
    assert result.exit_code == 0, result.output


def test_an_example_without_a_label_is_refused(cli, tiny_text, tmp_path: Path) -> None:
    data = tmp_path / "messages.csv"
    rows = [f"{' '.join(HAM_WORDS[:3])} {i},{'' if i == 5 else ('spam' if i % 2 else 'ham')}" for i in range(40)]
    data.write_text("text,label\n" + "\n".join(rows) + "\n")
    recipe = sms_recipe(tiny_text("bert"), data, tmp_path / "out")
    recipe["data"]["load_options"] = {}
    assert_refused(
        cli("validate", write_recipe(tmp_path / "r.yaml", recipe)),
        "data.label_column: 1 example(s) have no label in column 'label' (an empty cell)",
        output_dir=tmp_path / "out",
    )
