"""The errors tlhub raises for bad input.

The CLI prints any :class:`TlhubError` as one message and exits with code 2; every other exception is a
bug in tlhub or a plugin and keeps its traceback.
"""

from __future__ import annotations


class TlhubError(Exception):
    """Bad input from the user: a recipe, a file, a checkpoint or data that tlhub cannot use."""


class RecipeError(TlhubError):
    """The recipe file cannot be read, or its values do not validate.

    ``problems`` holds every problem found, each already prefixed with its YAML key path.
    """

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" if source else p for p in problems))


class PluginError(TlhubError):
    """A plugin is unknown, failed to load, or registered something invalid."""


class CheckpointError(TlhubError):
    """A checkpoint does not exist, holds no model, or cannot be understood."""


class DataError(TlhubError):
    """The data cannot be loaded, or does not fit the recipe (columns, splits, labels, files)."""


class InputTypeError(TlhubError):
    """The checkpoint, the plugin and the data disagree on the input type (image, audio, text)."""


class OutputDirError(TlhubError):
    """The output directory holds something that a run must not overwrite."""


class Interrupted(TlhubError):
    """SIGINT or SIGTERM stopped a run; the message says how to continue it (exit code 130)."""
