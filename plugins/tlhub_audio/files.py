"""The ``audio_files`` source: audio files matched by globs per split, labels read from their names.

data:
  source: audio_files
  data_files: {train: [recordings/*_[5-9].wav, recordings/*_[1-4][0-9].wav], test: recordings/*_[0-4].wav}
  load_options: {label_pattern: '^(\\d)_'}     # first group of a match on the file name; default: folder name
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from tlhub.errors import DataError

if TYPE_CHECKING:
    import datasets

    from tlhub.recipe import DataSection

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aiff", ".aif")


class Options(BaseModel):
    """``data.load_options`` of the ``audio_files`` source."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    label_pattern: str | None = Field(
        None,
        min_length=1,
        description="Regular expression searched in each file name; its first group (else the whole match) is "
        "the label. Default: the name of the file's folder.",
    )


def _label_of(path: str, pattern: re.Pattern[str] | None) -> str:
    if pattern is None:
        return Path(path).parent.name
    found = pattern.search(Path(path).name)
    if found is None:
        raise DataError(
            f"data.load_options.label_pattern: file name '{Path(path).name}' ({path}) does not match "
            f"{pattern.pattern!r}, so its label cannot be read"
        )
    return found.group(1) if found.groups() else found.group(0)


def load_audio_files(data: DataSection) -> datasets.DatasetDict:
    """One split per ``data_files`` key: an ``audio`` column (``datasets.Audio``) and a ``label`` column."""
    import datasets
    from datasets.data_files import DataFilesDict, sanitize_patterns

    if not data.data_files:
        raise DataError("data.data_files: source audio_files needs file patterns, e.g. {train: clips/*/*.wav}")
    raw_pattern = Options.model_validate(data.load_options).label_pattern
    try:
        pattern = re.compile(raw_pattern) if raw_pattern else None
    except re.error as exc:
        raise DataError(
            f"data.load_options.label_pattern: {raw_pattern!r} is not a regular expression ({exc})"
        ) from None
    patterns = sanitize_patterns(data.data_files)
    try:
        files = DataFilesDict.from_patterns(patterns, base_path=".")
    except FileNotFoundError as exc:
        raise DataError(f"data.data_files: {exc}") from None
    splits = {}
    for split, paths in files.items():
        audio = sorted(str(p) for p in paths if str(p).lower().endswith(AUDIO_SUFFIXES))
        if not audio:
            raise DataError(
                f"data.data_files: {split} pattern(s) {', '.join(patterns[split])} match no audio files "
                f"({', '.join(AUDIO_SUFFIXES)}; {len(paths)} other file(s))"
            )
        splits[split] = datasets.Dataset.from_dict(
            {"audio": audio, "label": [_label_of(p, pattern) for p in audio]}
        ).cast_column("audio", datasets.Audio())
    return datasets.DatasetDict(splits)
