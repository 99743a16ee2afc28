"""Data: load a recipe's ``data`` source with ``datasets``, check its columns and labels, and split it.

Two steps, so that cheap checks run before anything loads in bulk:
:func:`peek_features` reads only the schema; :func:`load_splits` loads and splits the examples.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np

from tlhub.errors import DataError
from tlhub.modality import INDEX_COLUMN

if TYPE_CHECKING:
    from tlhub.recipe import DataSection, Recipe
    from tlhub.sources import Source

ROLES = ("train", "validation", "test")


def numbered(dataset: datasets.DatasetDict | datasets.Dataset) -> Any:
    """``dataset`` (each split of it) with :data:`INDEX_COLUMN` (row numbers), unless it has one.

    Numbered as loaded, before any split is carved: adding a column to a carved split would rewrite it.
    """
    if isinstance(dataset, datasets.DatasetDict):
        return datasets.DatasetDict({name: numbered(split) for name, split in dataset.items()})
    if INDEX_COLUMN in dataset.column_names:
        return dataset
    return dataset.add_column(INDEX_COLUMN, list(range(len(dataset))))


@dataclass
class Splits:
    """The three splits of a run, with the label column cast to ``ClassLabel(names=labels)``."""

    train: datasets.Dataset
    validation: datasets.Dataset
    test: datasets.Dataset
    labels: list[str]
    notes: list[str]  # how the splits were made, for the model card
    test_inputs: list[str] = field(default_factory=list)  # what to call each test example (path or text)

    def items(self) -> list[tuple[str, datasets.Dataset]]:
        return [(role, getattr(self, role)) for role in ROLES]


def _load_kwargs(section: DataSection) -> dict[str, object]:
    return {"name": section.name, "data_files": section.data_files, **section.load_options}


def _describe_source(section: DataSection) -> str:
    files = f" with data_files {section.data_files}" if section.data_files else ""
    return f"data.source '{section.source}'{files}"


def _check_columns(features: datasets.Features, section: DataSection) -> None:
    columns = ", ".join(features)
    for key, column in [("input_column", c) for c in section.input_columns] + [("label_column", section.label_column)]:
        if column not in features:
            raise DataError(f"data.{key}: column '{column}' is not in the data (columns: {columns})")


def peek_features(section: DataSection, sources: dict[str, Source]) -> datasets.Features:
    """The data's features (column types), read from the schema alone where the source allows it."""
    if section.source in sources:
        dataset = sources[section.source].load(section)
        features = next(iter(dataset.values())).features
    else:
        failed = _FailedFiles()
        try:
            with _logging_to(failed):
                # No trust_remote_code, here or below: datasets 4+ (tlhub's floor) refuses loading scripts
                # outright and only logs an error for the argument, so no dataset code can run.
                streamed = datasets.load_dataset(section.source, streaming=True, **_load_kwargs(section))  # type: ignore[arg-type]
                split = next(iter(streamed.values()))
                features = split.features
                if features is None:
                    # Builders such as csv infer types from the rows; datasets has no public call that reads
                    # just the first rows for that, so use the one IterableDataset itself uses.
                    features = split._resolve_features().features
        except FileNotFoundError as exc:
            raise DataError(f"{_describe_source(section)}: {exc}") from None
        except Exception as exc:  # datasets raises many types for a source it cannot resolve
            if (parse_error := _parse_error(section, exc, failed.files)) is not None:
                raise parse_error from None
            raise DataError(f"{_describe_source(section)} cannot be loaded: {type(exc).__name__}: {exc}") from None
    _check_columns(features, section)
    return features


class _FailedFiles(logging.Handler):
    """Collects the file names that ``datasets``' csv/json builders log when a file does not parse."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.files: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if found := re.match(r"Failed to read file '([^']+)'", record.getMessage()):
            self.files.append(found.group(1))


@contextlib.contextmanager
def _logging_to(handler: logging.Handler) -> Iterator[None]:
    logger = logging.getLogger("datasets")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _parse_error(section: DataSection, exc: BaseException, files: list[str]) -> DataError | None:
    """A ``DataError`` naming the file and line when the load failed on a line that does not parse."""
    cause = exc if type(exc).__name__ == "ParserError" else exc.__cause__ or exc.__context__
    if cause is None or type(cause).__name__ != "ParserError":  # pandas' error for a line that does not parse
        return None
    where = f"file '{files[0]}'" if files else _describe_source(section)
    line = re.search(r"line (\d+)", str(cause))
    at = f" line {line.group(1)}" if line else ""
    detail = str(cause).split("error:", 1)[-1].strip()
    return DataError(
        f"data: {where}{at} does not parse ({detail}); check data.load_options (sep, quoting, column_names)"
    )


def _load(section: DataSection, sources: dict[str, Source]) -> datasets.DatasetDict:
    if section.source in sources:
        return sources[section.source].load(section)
    failed = _FailedFiles()
    try:
        with _logging_to(failed):
            loaded = datasets.load_dataset(section.source, **_load_kwargs(section))  # type: ignore[arg-type]
    except ValueError as exc:
        # datasets refuses to build a split with no rows; say which of the recipe's splits it is.
        empty = re.search(r'Instruction "([^"]+)" corresponds to no data', str(exc))
        if empty is None:
            raise DataError(f"{_describe_source(section)} cannot be loaded: ValueError: {exc}") from None
        name = empty.group(1)
        role = next((r for r in ROLES if getattr(section.splits, r) == name), None)
        key = f"data.splits.{role}" if role else "data.data_files"
        raise DataError(
            f"{key}: the {role or name} split is empty (split '{name}' of {_describe_source(section)} has no rows)"
        ) from None
    except Exception as exc:
        if (parse_error := _parse_error(section, exc, failed.files)) is not None:
            raise parse_error from None
        raise DataError(f"{_describe_source(section)} cannot be loaded: {type(exc).__name__}: {exc}") from None
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    if section.lines_per_row == "one":
        _check_rows_per_line(section, loaded)
    return loaded  # type: ignore[return-value]


# Line-based builders (json is not: a JSON document may span lines), and the load options under which
# lines and rows no longer match one to one.
_LINE_BUILDERS = ("csv",)
_LINE_SKIPPING = ("skiprows", "skipfooter", "comment", "nrows", "skip_blank_lines", "lineterminator")


def _check_rows_per_line(section: DataSection, loaded: datasets.DatasetDict) -> None:
    """Rows lost in reading are never silent: in a csv file every non-empty line is one row, so a
    stray quote that swallows line breaks (or a record split over lines) shows as a count that differs."""
    from datasets.data_files import DataFilesDict, sanitize_patterns

    if section.source not in _LINE_BUILDERS or not section.data_files:
        return
    if any(key in section.load_options for key in _LINE_SKIPPING):
        return
    header = section.source == "csv" and "column_names" not in section.load_options
    header = header and section.load_options.get("header", "infer") is not None
    files = DataFilesDict.from_patterns(sanitize_patterns(section.data_files), base_path=".")
    for split, paths in files.items():
        if split not in loaded:
            continue
        lines = 0
        for path in paths:
            with open(path, "rb") as f:
                lines += sum(1 for line in f if line.strip()) - header
        if lines != loaded[split].num_rows:
            raise DataError(
                f"data.data_files: the {split} file(s) {', '.join(map(str, paths[:3]))} hold {lines} non-empty "
                f"lines but were read as {loaded[split].num_rows} rows: a quote character that opens a quoted "
                "field makes the reader join lines (set data.load_options.quoting: 3 to read quotes as plain "
                "text), or records span several lines (then set data.lines_per_row: any)"
            )


def _label_names(dataset: datasets.DatasetDict, section: DataSection) -> list[str]:
    column = section.label_column
    feature = next(iter(dataset.values())).features[column]
    if isinstance(feature, datasets.ClassLabel):
        if section.labels is not None and len(section.labels) != feature.num_classes:
            raise DataError(
                f"data.labels: {len(section.labels)} names given, but column '{column}' has "
                f"{feature.num_classes} classes ({', '.join(feature.names)})"
            )
        return section.labels or list(feature.names)
    present = {v for split in dataset.values() for v in split.unique(column)}
    if None in present:
        empty = sum(split[column].count(None) for split in dataset.values())
        raise DataError(
            f"data.label_column: {empty} example(s) have no label in column '{column}' (an empty cell); give every "
            "example a label, or remove those rows"
        )
    values = sorted(present)
    if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        if section.labels is None:
            return [str(v) for v in values]
        unknown = [v for v in values if v not in section.labels]
        if unknown:
            raise DataError(
                f"data.labels: the data has label {unknown[0]!r}, which is not in data.labels "
                f"({', '.join(section.labels)})"
            )
        return section.labels
    if not (isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "uint"))):
        hint = " (numbers with empty cells read as floats)" if str(feature.dtype).startswith("float") else ""
        raise DataError(f"data.label_column: column '{column}' holds {feature}{hint}, not class ids or class names")
    names = section.labels or [str(i) for i in range(int(values[-1]) + 1 if values else 0)]
    bad = [v for v in values if not 0 <= v < len(names)]
    if bad:
        raise DataError(
            f"data.label_column: label {bad[0]} in column '{column}' is outside 0..{len(names) - 1} "
            f"(data.labels names {len(names)} classes)"
        )
    return names


def _subset_per_class(
    split: datasets.Dataset, column: str, per_class: int, seed: int, labels: list[str]
) -> tuple[datasets.Dataset, str]:
    """At most ``per_class`` examples of each class (seeded); the note says which classes had fewer."""
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(split[column]):
        by_class[label].append(index)
    rng = np.random.default_rng(seed)
    keep = [i for indices in by_class.values() for i in rng.permutation(indices)[:per_class]]
    short = sorted((len(indices), labels[c]) for c, indices in by_class.items() if len(indices) < per_class)
    note = f"train: at most {per_class} examples per class kept (seed {seed})"
    if short:
        shown = ", ".join(f"'{name}' ({n})" for n, name in short[:10]) + (", ..." if len(short) > 10 else "")
        note += f"; {len(short)} class(es) had fewer and keep all they have: {shown}"
    return split.select(sorted(keep)), note


def _carve(
    train: datasets.Dataset, role: str, fraction: float, section: DataSection
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Split a stratified ``fraction`` of ``train`` off as ``role``; a split that would be empty, or a class
    too small to stratify, is a ``DataError`` naming the key and what would work."""
    key = f"data.{role}_fraction"
    counts = Counter(train[section.label_column])
    n, classes = len(train), len(counts)
    carved = math.ceil(fraction * n)
    where = f"the {n} examples of '{section.splits.train}' left to carve from"
    if 2 * classes > n:
        raise DataError(f"{key}: {where} are too few to split {classes} classes into {role} and training parts")
    if carved < classes or n - carved < classes:
        raise DataError(
            f"{key}: {fraction} of {where} gives {carved} {role} and {n - carved} training examples; a stratified "
            f"split needs at least one per class ({classes}) on each side: use a fraction between "
            f"{classes / n:.3g} and {1 - classes / n:.3g}"
        )
    if rare := [c for c, k in counts.items() if k < 2]:
        raise DataError(
            f"{key}: class(es) {', '.join(_class_names(train, section.label_column, rare))} have a single example "
            f"in '{section.splits.train}'; a stratified split needs at least two per class: add examples, or give "
            f"data.splits.{role} a split of its own"
        )
    try:
        parts = train.train_test_split(
            test_size=fraction, stratify_by_column=section.label_column, seed=section.split_seed
        )
    except ValueError as exc:  # sklearn's stratification refusing a corner the counts above do not catch
        raise DataError(f"{key}: {fraction} cannot split '{section.splits.train}' ({exc})") from None
    rest, carved = parts["train"], parts["test"]
    if missing := set(counts) - set(carved[section.label_column]):
        raise DataError(
            f"{key}: the {len(carved)} {role} examples carved with fraction {fraction} have no example of class(es) "
            f"{', '.join(_class_names(train, section.label_column, sorted(missing)))}, so its scores would leave "
            f"them out; use a larger {key.split('.')[-1]} (or give data.splits.{role} a split of its own)"
        )
    return rest, carved


def _class_names(split: datasets.Dataset, column: str, ids: list[int]) -> list[str]:
    feature = split.features[column]
    return [repr(feature.int2str(i)) for i in sorted(ids)]


def _check_classes(splits: Splits, column: str) -> None:
    """A model cannot learn a class the training split lacks, nor anything from one class."""
    present = set(splits.train[column])
    if len(present) < 2:
        raise DataError(
            f"data.splits.train: the training split has {len(present)} class(es) "
            f"({', '.join(_class_names(splits.train, column, list(present))) or 'none'}); a classifier needs "
            "examples of at least two"
        )
    if absent := [i for i in range(len(splits.labels)) if i not in present]:
        raise DataError(
            f"data.labels: class(es) {', '.join(_class_names(splits.train, column, absent))} have no training "
            "example; drop them from data.labels or add examples"
        )


def load_splits(section: DataSection, sources: dict[str, Source]) -> Splits:
    """Load the data, cast labels to ``ClassLabel``, and return train/validation/test splits."""
    dataset = _load(section, sources)
    _check_columns(next(iter(dataset.values())).features, section)
    labels = _label_names(dataset, section)
    target = datasets.ClassLabel(names=labels)
    dataset = numbered(dataset.cast_column(section.label_column, target))
    notes: list[str] = []

    def source_split(role: str) -> datasets.Dataset | None:
        name = getattr(section.splits, role)
        if name is None:
            return None
        if name not in dataset:
            raise DataError(f"data.splits.{role}: split '{name}' is not in the data (splits: {', '.join(dataset)})")
        return dataset[name]

    train = source_split("train")
    assert train is not None
    chosen: dict[str, datasets.Dataset] = {}
    for role, fraction in (("test", section.test_fraction), ("validation", section.validation_fraction)):
        split = source_split(role)
        if split is None:
            assert fraction is not None  # the schema requires one of the two
            train, split = _carve(train, role, fraction, section)
            notes.append(
                f"{role}: {len(split)} examples carved from '{section.splits.train}' "
                f"(stratified, fraction {fraction}, seed {section.split_seed})"
            )
        else:
            notes.append(f"{role}: source split '{getattr(section.splits, role)}' ({len(split)} examples)")
        chosen[role] = split
    if section.train_samples_per_class is not None:
        train, note = _subset_per_class(
            train, section.label_column, section.train_samples_per_class, section.split_seed, labels
        )
        notes.append(note)
    notes.insert(0, f"train: {len(train)} examples")
    if description := dataset[section.splits.train].info.description:
        notes.insert(0, f"source data: {description}")  # how a plugin's source made the data
    splits = Splits(train=train, validation=chosen["validation"], test=chosen["test"], labels=labels, notes=notes)
    for role, split in splits.items():
        if len(split) == 0:
            raise DataError(f"data.splits.{role}: the {role} split is empty")
    _check_classes(splits, section.label_column)
    return splits


def size_notes(splits: Splits, recipe: Recipe) -> list[str]:
    """Legal settings that a reader of the model card should know shaped the run."""
    notes = []
    train, batch = len(splits.train), recipe.train.batch_size
    if batch > train:
        notes.append(
            f"train.batch_size {batch} is larger than the {train} training examples: each epoch is one batch of {train}"
        )
    for role in ("validation", "test"):
        split = getattr(splits, role)
        missing = set(range(len(splits.labels))) - set(split[recipe.data.label_column])
        if missing:
            names = ", ".join(_class_names(split, recipe.data.label_column, sorted(missing)))
            notes.append(f"{role}: no examples of class(es) {names}; its scores cover the other classes")
    return notes


def describe_inputs(split: datasets.Dataset, columns: list[str]) -> list[str]:
    """What to call each example in a report: its file path, its text, or ``#i``."""
    import datasets

    column = columns[0]
    feature = split.features[column]
    if isinstance(feature, (datasets.Image, datasets.Audio)):
        raw = split.cast_column(column, type(feature)(decode=False))[column]
        return [item.get("path") or f"#{i}" for i, item in enumerate(raw)]
    if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        texts = [split[c] for c in columns]
        return [" | ".join(parts) for parts in zip(*texts, strict=True)]
    return [f"#{i}" for i in range(len(split))]
