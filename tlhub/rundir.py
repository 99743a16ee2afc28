"""The run directory (``output_dir``): the one owner of every path in it, and of its lifecycle.

A finished run directory is a Hugging Face model folder (``config.json``, ``model.safetensors``, the
processor's files) plus ``metrics.json``, ``recipe.yaml``, ``run.json`` and a ``README.md`` model card;
a LoRA run also holds its adapter in ``adapter/``. While a run trains, ``checkpoints/checkpoint_N`` hold
resumable states and ``best_model/`` the best epoch's weights. Other modules receive these paths;
none builds one.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlhub.errors import OutputDirError

_COMPLETE = "COMPLETE"  # written into a checkpoint folder once its save has returned
_NAME_MAX = 255  # bytes per path component on the usual file systems (ext4, xfs, btrfs, tmpfs)
_PATH_MAX = 4096


def check_location(output_dir: str, recipe_file: str | None, checkpoint: str | None) -> list[str]:
    """Problems with ``output_dir`` as a place to write a run, found without writing anything.

    Never the working directory or a parent of it, the recipe's folder, or the base checkpoint's
    folder (a replaced run would take them with it); never a path the file system cannot hold.
    """
    if not output_dir.strip():
        return ["output_dir: empty; name a folder for the run, e.g. runs/my_run"]
    path = Path(output_dir).expanduser().absolute()
    too_long = [part for part in path.parts if len(part.encode()) > _NAME_MAX]
    if too_long:
        return [
            f"output_dir: the name '{too_long[0][:40]}...' is {len(too_long[0].encode())} bytes; "
            f"a file system allows {_NAME_MAX} per name"
        ]
    if len(str(path).encode()) >= _PATH_MAX:
        return [f"output_dir: the path is {len(str(path).encode())} bytes; a file system allows {_PATH_MAX - 1}"]
    resolved = path.resolve()
    protected = {Path.cwd().resolve(): "the working directory"}
    if recipe_file is not None:
        protected[Path(recipe_file).resolve().parent] = "the recipe's folder"
    if checkpoint is not None and Path(checkpoint).expanduser().exists():
        protected[Path(checkpoint).expanduser().resolve()] = "the base checkpoint's folder"
    for folder, what in protected.items():
        if resolved == folder or resolved in folder.parents:
            inside = "" if resolved == folder else f" (a parent of {what})"
            return [
                f"output_dir: '{output_dir}' is {what if not inside else 'a folder'}{inside}; a run writes into "
                "its own folder, e.g. runs/my_run"
            ]
    for parent in [resolved, *resolved.parents]:
        if parent.exists():
            if not parent.is_dir():
                what = "is a file" if parent == resolved else f"lies under the file '{parent}'"
                return [f"output_dir: '{output_dir}' {what}, not a directory"]
            break
    return []


@dataclass(frozen=True)
class CheckpointStore:
    """Where the engine saves resumable states and the best epoch's weights, without naming any path."""

    folder: Path  # checkpoints/
    best: Path  # best_model/

    def next(self, number: int) -> Path:
        """The folder for the ``number``-th save."""
        return self.folder / f"checkpoint_{number}"

    def commit(self, path: Path, keep: int = 2) -> None:
        """Mark a finished save complete and drop all but the newest ``keep``."""
        (path / _COMPLETE).touch()
        for older in sorted(self.folder.glob("checkpoint_*"), key=_number)[:-keep]:
            shutil.rmtree(older)

    def latest(self) -> Path | None:
        """The newest checkpoint whose save completed (a kill during a save leaves an incomplete one)."""
        done = [p for p in self.folder.glob("checkpoint_*") if (p / _COMPLETE).exists()] if self.folder.is_dir() else []
        return max(done, key=_number, default=None)


def _number(path: Path) -> int:
    return int(path.name.split("_")[-1])


class RunDir:
    """The files of one run under ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.run_file = path / "run.json"  # written when a run starts: marks the directory as a tlhub run
        self.metrics_file = path / "metrics.json"
        self.recipe_file = path / "recipe.yaml"
        self.card = path / "README.md"
        self.adapter = path / "adapter"
        self.checkpoints = CheckpointStore(folder=path / "checkpoints", best=path / "best_model")

    def decide(self, resume: bool, overwrite: bool, recipe: dict[str, Any]) -> str:
        """What to do with the directory before anything is written: ``fresh``, ``resume`` or ``replace``.

        A non-empty directory is never overwritten silently: it takes ``--overwrite``, or ``--resume`` for
        an interrupted run of the same recipe.
        """
        path = self.path
        if not path.exists() or (path.is_dir() and not any(path.iterdir())):
            return "fresh"
        if not path.is_dir():
            raise OutputDirError(f"output_dir: '{path}' is a file, not a directory")
        if overwrite:
            return "replace"
        info = self.read_record()
        advice = f"pass --overwrite to replace it, or choose another output_dir (e.g. output_dir={path}-2)"
        if info is None:
            raise OutputDirError(f"output_dir: '{path}' is not empty and holds no tlhub run; {advice}")
        if not resume:
            if info.get("finished"):
                raise OutputDirError(
                    f"output_dir: '{path}' holds a finished run of {info.get('recipe_file')}; {advice}"
                )
            raise OutputDirError(
                f"output_dir: '{path}' holds an interrupted run of {info.get('recipe_file')}: pass --resume to "
                f"continue it, or {advice}"
            )
        if info.get("finished"):
            raise OutputDirError(f"output_dir: '{path}' holds a finished run; nothing to resume; {advice}")
        changed = _changed_keys(info.get("recipe", {}), recipe)
        if changed:
            raise OutputDirError(
                f"output_dir: '{path}' holds a run of a different recipe (differs at: {', '.join(changed)}); "
                f"resume with the same recipe and overrides, or {advice}"
            )
        return "resume" if self.checkpoints.latest() is not None else "replace"

    def read_record(self) -> dict[str, Any] | None:
        """``run.json`` of this directory, or ``None`` when there is none."""
        return read_run_record(self.path)

    def start(self, decision: str, info: dict[str, Any]) -> None:
        """Create (or clear, for ``replace``) the directory and write ``run.json``."""
        if decision == "replace" and self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        if decision != "resume":
            self.run_file.write_text(json.dumps(info, indent=2))

    def save_model(self, model: Any, processor: Any) -> None:
        """A Hugging Face model folder (weights, config with the label map, processor).

        A peft model also leaves its adapter (with the trained head) in ``adapter/``, then is merged so that
        the folder itself loads with plain transformers.
        """
        from peft import PeftModel

        if isinstance(model, PeftModel):
            model.save_pretrained(str(self.adapter))
            processor.save_pretrained(self.adapter)
            model = model.merge_and_unload()
        model.save_pretrained(self.path)
        processor.save_pretrained(self.path)

    def finish(self, metrics: dict[str, Any], recipe_yaml: str, card: str, record: dict[str, Any]) -> None:
        """Write the results, mark the run finished in ``run.json`` and drop the resumable checkpoints."""
        self.metrics_file.write_text(json.dumps(metrics, indent=2))
        self.recipe_file.write_text(recipe_yaml)
        self.card.write_text(card)
        info = self.read_record() or {}
        info.update(record, finished=True)
        self.run_file.write_text(json.dumps(info, indent=2))
        shutil.rmtree(self.checkpoints.folder, ignore_errors=True)
        shutil.rmtree(self.checkpoints.best, ignore_errors=True)


def read_run_record(folder: Path) -> dict[str, Any] | None:
    """The ``run.json`` a tlhub run left in ``folder`` (a run directory, or a checkpoint made by tlhub)."""
    run_file = folder / "run.json"
    if not run_file.is_file():
        return None
    try:
        info = json.loads(run_file.read_text())
    except (ValueError, OSError) as exc:
        raise OutputDirError(f"'{run_file}' is not a readable run record ({type(exc).__name__}: {exc})") from None
    if not isinstance(info, dict):
        raise OutputDirError(f"'{run_file}' is not a run record (a JSON object); it holds {type(info).__name__}")
    return info


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys
