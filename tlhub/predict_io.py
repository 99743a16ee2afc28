"""What ``tlhub predict`` reads and writes: inputs named on the command line, predictions as CSV or JSONL."""

from __future__ import annotations

import csv
import glob
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlhub.errors import DataError

if TYPE_CHECKING:
    from tlhub.inference import Prediction, TrainedModel

# Table files whose --column holds the inputs, and the datasets builder that reads each.
TABLES = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_GLOB = set("*?[")


def _media_suffixes(input_type: str) -> tuple[str, ...]:
    """The file suffixes a folder is searched for: what PIL opens, or what FFmpeg commonly decodes."""
    if input_type == "image":
        from PIL import Image

        return tuple(Image.registered_extensions())
    if input_type == "audio":
        return (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".webm", ".wma")
    return (".txt",)


def _table_values(path: Path, columns: list[str]) -> list[Any]:
    import datasets

    suffix = path.suffix.lower()
    options = {"delimiter": "\t"} if suffix == ".tsv" else {}
    try:
        table = datasets.load_dataset(TABLES[suffix], data_files=str(path), split="train", **options)
    except Exception as exc:  # datasets words a bad file many ways; each is the file's fault here
        lines = str(exc).strip().splitlines()
        raise DataError(
            f"input '{path}' does not read as {TABLES[suffix]} ({lines[0][:200] if lines else ''})"
        ) from None
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise DataError(f"--column: '{path}' has no column '{missing[0]}' (columns: {', '.join(table.column_names)})")
    if len(columns) == 1:
        return [_relative_to(path, v) for v in table[columns[0]]]
    return list(zip(*(table[c] for c in columns), strict=True))


def _relative_to(table: Path, value: Any) -> Any:
    """A file path in a table is read relative to the table's folder (as ``datasets`` builders do)."""
    if isinstance(value, str) and not Path(value).is_absolute() and (table.parent / value).exists():
        return str(table.parent / value)
    return value


def _text_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"input '{path}' is not UTF-8 text (byte {exc.start})") from None
    return [line for line in text.splitlines() if line.strip()]


def gather_inputs(specs: list[str], trained: TrainedModel, column: str | None) -> tuple[list[Any], list[str]]:
    """The inputs the command line names, and what to call each in the output (a path, or the text)."""
    kind = trained.modality.input_type
    columns = column.split(",") if column else trained.input_columns
    values: list[Any] = []
    for spec in specs:
        path = Path(spec)
        if _GLOB & set(spec) and not path.exists():
            files = [Path(f) for f in sorted(glob.glob(spec, recursive=True)) if Path(f).is_file()]
            if not files:
                raise DataError(f"input '{spec}': the pattern matches no file")
        elif path.is_dir():
            if kind == "text":
                raise DataError(
                    f"input '{spec}' is a folder; text comes as a text file (one input per line) or a table"
                )
            suffixes = _media_suffixes(kind)
            files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
            if not files:
                raise DataError(f"input '{spec}': the folder holds no {kind} file ({', '.join(suffixes[:8])}, ...)")
        elif path.is_file():
            files = [path]
        else:
            raise DataError(f"input '{spec}' does not exist (give files, folders, globs or table files)")
        for file in files:
            if file.suffix.lower() in TABLES:
                values += _table_values(file, columns)
            elif kind == "text":
                values += _text_lines(file)
            else:
                values.append(str(file))
    if len(trained.input_columns) > 1 and not all(isinstance(v, tuple) for v in values):
        raise DataError(
            f"the model reads pairs of texts ({', '.join(trained.input_columns)}): give a table file and --column a,b"
        )
    described = [" | ".join(v) if isinstance(v, tuple) else str(v) for v in values]
    return values, described


def write_predictions(predictions: list[Prediction], output: str) -> None:
    """Predictions as CSV (``input, label, score, top_k`` with ``label:score`` pairs joined by ``;``) or JSONL."""
    from tlhub.rundir import replace_file

    if output.lower().endswith(".jsonl"):
        text = "".join(
            json.dumps({"input": p.input, "label": p.label, "score": p.score, "top_k": p.top_k}) + "\n"
            for p in predictions
        )
    else:
        import io

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["input", "label", "score", "top_k"])
        for p in predictions:
            writer.writerow([p.input, p.label, f"{p.score:.6f}", ";".join(f"{lb}:{s:.6f}" for lb, s in p.top_k)])
        text = out.getvalue()
    try:
        replace_file(Path(output), text)
    except OSError as exc:
        from tlhub.errors import OutputDirError

        raise OutputDirError(f"--output: cannot write '{output}' ({exc.strerror})") from None
