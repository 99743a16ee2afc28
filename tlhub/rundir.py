"""The run directory (``output_dir``): the one owner of every path in it, and of its lifecycle.

A finished run directory is a Hugging Face model folder (``config.json``, ``model.safetensors``, the
processor's files) plus ``metrics.json``, ``recipe.yaml``, ``run.json`` and a ``README.md`` model card;
a LoRA run also holds its adapter in ``adapter/``. While a run trains, ``checkpoints/checkpoint_N`` hold
resumable states and ``best_model/`` the best epoch's weights. Other modules receive these paths;
none builds one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlhub.errors import OutputDirError

_COMPLETE = "COMPLETE"  # written into a checkpoint folder once its save has returned
_TRAIN_STATE = "train_state.json"  # the loop's progress (TrainState), beside Accelerate's states
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
    try:
        resolved = path.resolve(strict=False)
    except (OSError, RuntimeError):  # RuntimeError: Python 3.11's word for a symbolic link loop
        return [f"output_dir: '{output_dir}' is a symbolic link loop"]
    protected = {Path.cwd().resolve(): "the working directory"}
    if recipe_file is not None:
        protected[Path(recipe_file).resolve().parent] = "the recipe's folder"
    with contextlib.suppress(OSError):  # a name too long to be a folder is no folder to protect
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

    def commit(self, path: Path, state: str, keep: int = 2) -> None:
        """Add the loop's own state (JSON) to a finished save, mark it complete, drop all but the newest ``keep``."""
        (path / _TRAIN_STATE).write_text(state)
        (path / _COMPLETE).touch()
        for older in sorted(self.folder.glob("checkpoint_*"), key=_number)[:-keep]:
            shutil.rmtree(older)

    def read_state(self, path: Path) -> str:
        """The loop's own state saved with checkpoint ``path`` (JSON text)."""
        return (path / _TRAIN_STATE).read_text()

    def latest(self) -> Path | None:
        """The newest checkpoint whose save completed (a kill during a save leaves an incomplete one)."""
        done = [p for p in self.folder.glob("checkpoint_*") if (p / _COMPLETE).exists()] if self.folder.is_dir() else []
        return max(done, key=_number, default=None)

    def discard_incomplete(self) -> None:
        """Remove saves that did not complete (after a write error: they only take space)."""
        for path in self.folder.glob("checkpoint_*"):
            if not (path / _COMPLETE).exists():
                shutil.rmtree(path, ignore_errors=True)


def _number(path: Path) -> int:
    return int(path.name.split("_")[-1])


# The names a Hugging Face model folder's files usually have: a user's file of such a name in output_dir
# is refused before training (save_pretrained would replace it); the final save checks every name again.
_MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "added_tokens.json",
)


class RunDir:
    """The files of one run under ``path``, and who may write them.

    Every top-level entry tlhub writes is recorded in a manifest before it appears (the model folder is
    saved into a recorded staging folder first, then moved into place name by name); ``--overwrite``
    removes exactly the recorded entries and keeps everything else. An exclusive lock is held from the
    decision to the end of the run, so two runs never share a folder. ``run.json`` (always replaced
    whole, never half-written) says whether the run is ``running`` (or was interrupted, when no one
    holds the lock), ``failed`` (with the error) or ``finished``. Names starting with ``.tlhub`` are
    tlhub's control files.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.run_file = path / "run.json"  # written when a run starts: marks the directory as a tlhub run
        self.metrics_file = path / "metrics.json"
        self.recipe_file = path / "recipe.yaml"
        self.card = path / "README.md"
        self.adapter = path / "adapter"
        self.curves = path / "curves.png"  # loss, validation metric and learning rate over training
        self.evaluation = path / "eval"  # the test split's report: metrics, confusion matrix, mistakes
        self.logs = path / "logs"  # the trackers' files (train.report_to), e.g. TensorBoard event files
        self.checkpoints = CheckpointStore(folder=path / "checkpoints", best=path / "best_model")
        self._manifest = path / ".tlhub-manifest"  # the top-level names tlhub wrote, one per line
        self._lock_file = path / ".tlhub.lock"
        self._owner = path / ".tlhub-owner.json"  # who holds the lock, for the message of the next one
        self._staging = path / ".tlhub-staging"  # the model folder before it is moved into place
        self._lock: Any = None
        self._created = False  # the run made the folder: a run that fails before starting removes it

    # --- claiming the folder -------------------------------------------------------------------

    def claim(self, resume: bool, overwrite: bool, record: dict[str, Any]) -> str:
        """Lock the folder and decide, under the lock: ``fresh``, ``resume`` or ``replace``.

        ``record`` is the new run's ``run.json`` (its ``recipe`` and ``base_fingerprint`` are compared
        with an interrupted run's on ``--resume``). Raises ``OutputDirError`` with one line.
        """
        from filelock import FileLock, Timeout

        if resume and overwrite:
            raise OutputDirError("--resume and --overwrite contradict each other: resume the run, or replace it")
        try:
            self._created = not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(self._lock_file), timeout=0)
            lock.acquire()
        except Timeout:
            raise OutputDirError(
                f"output_dir: '{self.path}' is in use by another tlhub run ({self._holder()})"
            ) from None
        except OSError as exc:
            raise OutputDirError(f"output_dir: cannot create '{self.path}' ({exc.strerror})") from None
        self._lock = lock
        try:
            owner = {"pid": os.getpid(), "host": socket.gethostname(), "command": record.get("command")}
            replace_file(self._owner, json.dumps({**owner, "since": record.get("started")}))
            return self._decide(resume, overwrite, record)
        except BaseException:
            self.release(failed_before_start=True)
            raise

    def _holder(self) -> str:
        for _ in range(50):  # the holder writes who it is just after taking the lock
            try:
                owner = json.loads(self._owner.read_text())
                # a killed run's file names a process that is gone: the new holder has not written yet
                if owner["host"] != socket.gethostname() or _alive(owner["pid"]):
                    return f"pid {owner['pid']} on {owner['host']} since {owner['since']}: {owner['command']}"
            except (OSError, ValueError, KeyError, TypeError):
                pass
            time.sleep(0.01)
        return "its owner did not say who it is"

    def _decide(self, resume: bool, overwrite: bool, record: dict[str, Any]) -> str:
        path = self.path
        ours = self._recorded()
        others = sorted(p.name for p in path.iterdir() if p.name not in ours and not _is_control(p.name))
        advice = f"pass --overwrite to replace it, or choose another output_dir (e.g. output_dir={path}-2)"
        if clash := sorted(set(others) & (self._fixed_names() | set(_MODEL_FILES))):
            raise OutputDirError(
                f"output_dir: '{path}' holds {', '.join(clash)}, which tlhub did not write and a run would "
                "replace; move them, or choose another output_dir"
            )
        if self.run_file.name not in ours:
            if resume:
                raise OutputDirError(f"output_dir: '{path}' holds no tlhub run: nothing to resume")
            if others and not overwrite:
                raise OutputDirError(f"output_dir: '{path}' is not empty and holds no tlhub run; {advice}")
            return "fresh" if not others else "replace"  # replace: write beside the user's files; they stay
        if overwrite:
            return "replace"  # without reading run.json: a corrupt one must not block a fresh start
        try:
            info = self.read_record() or {}
        except OutputDirError as exc:
            raise OutputDirError(f"{exc}; pass --overwrite to start the run again") from None
        status, of = info.get("status", "finished" if info.get("finished") else "running"), info.get("recipe_file")
        if not resume:
            if status == "finished":
                raise OutputDirError(f"output_dir: '{path}' holds a finished run of {of}; {advice}")
            if status == "failed":
                why = info.get("error") or "no reason recorded"
                raise OutputDirError(
                    f"output_dir: '{path}' holds a run of {of} that failed ({why}); "
                    f"pass --resume to continue it once the cause is fixed, or {advice}"
                )
            raise OutputDirError(
                f"output_dir: '{path}' holds an interrupted run of {of}: pass --resume to continue it, or {advice}"
            )
        if status == "finished":
            raise OutputDirError(f"output_dir: '{path}' holds a finished run; nothing to resume; {advice}")
        # The folder may have moved since: where it is is not part of what the run computes.
        old, new = ({**r, "output_dir": None} for r in (info.get("recipe", {}), record["recipe"]))
        if changed := _changed_keys(old, new):
            raise OutputDirError(
                f"output_dir: '{path}' holds a run of a different recipe (differs at: {', '.join(changed)}); "
                f"resume with the same recipe and overrides, or {advice}"
            )
        if info.get("base_fingerprint") != record.get("base_fingerprint"):
            raise OutputDirError(
                f"output_dir: the base checkpoint changed since the run in '{path}' started (its config or weights "
                f"differ); resuming would mix two bases; {advice}"
            )
        if self.checkpoints.latest() is None:
            raise OutputDirError(
                f"output_dir: the run in '{path}' stopped before its first checkpoint: nothing to resume; {advice}"
            )
        return "resume"

    def _recorded(self) -> set[str]:
        try:
            return {line for line in self._manifest.read_text().splitlines() if line}
        except FileNotFoundError:
            return set()

    def _fixed_names(self) -> set[str]:
        fixed = (
            self.run_file,
            self.metrics_file,
            self.recipe_file,
            self.card,
            self.adapter,
            self.curves,
            self.evaluation,
            self.logs,
        )
        return {p.name for p in fixed} | {self.checkpoints.folder.name, self.checkpoints.best.name}

    def _record(self, *names: str) -> None:
        """Add top-level names to the manifest, before they are written: a crash never hides one."""
        new = [n for n in names if n not in self._recorded()]
        if new:
            with self._manifest.open("a") as manifest:
                manifest.write("".join(f"{n}\n" for n in new))

    def _remove_recorded(self) -> None:
        """Remove exactly what earlier runs recorded; never follow a link out of the folder."""
        for name in sorted(self._recorded()):
            entry = self.path / name
            if "/" in name or name in ("", ".", "..") or not (entry.exists() or entry.is_symlink()):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        for entry in self.path.glob(".tlhub-tmp-*"):  # half-written control files of a killed run
            entry.unlink()
        self._manifest.unlink(missing_ok=True)

    def release(self, failed_before_start: bool = False) -> None:
        """Give the folder back; a run that failed before writing anything leaves no trace.

        The lock file stays (removing it could let two processes each lock a different file)."""
        if self._lock is None:
            return
        self._owner.unlink(missing_ok=True)
        self._lock.release()
        self._lock = None
        if failed_before_start:
            self._lock_file.unlink(missing_ok=True)
            if self._created:
                with contextlib.suppress(OSError):
                    self.path.rmdir()  # only if empty

    # --- the run's lifetime --------------------------------------------------------------------

    def start(self, decision: str, record: dict[str, Any]) -> None:
        """Clear what an earlier run wrote (``replace``) and write ``run.json`` (status ``running``)."""
        if decision == "replace":
            self._remove_recorded()
        if decision == "resume":
            self.update_record(status="running", error=None)
            return
        self._record(self.run_file.name, self.checkpoints.folder.name, self.checkpoints.best.name)
        replace_file(self.run_file, json.dumps({**record, "status": "running", "finished": False}, indent=2))

    def read_record(self) -> dict[str, Any] | None:
        """``run.json`` of this directory, or ``None`` when there is none."""
        return read_run_record(self.path)

    def update_record(self, **values: Any) -> None:
        """Change fields of ``run.json`` (replaced whole: a kill never leaves half of it)."""
        info = self.read_record() or {}
        info.update(values)
        replace_file(self.run_file, json.dumps(info, indent=2))

    def fail(self, error: str) -> None:
        """Say in ``run.json`` why the run stopped (best effort: the disk may be what failed).

        On a full disk the whole-file replacement has no room for its second copy; writing in place
        reuses the blocks of the old record, which is nearly as long."""
        with contextlib.suppress(OSError, OutputDirError):
            info = self.read_record()
            if info is None:
                return
            text = json.dumps({**info, "status": "failed", "error": error}, indent=2)
            try:
                replace_file(self.run_file, text)
            except OSError:
                self.path.joinpath(f".tlhub-tmp-{self.run_file.name}").unlink(missing_ok=True)
                self.run_file.write_text(text)

    def save_model(self, model: Any, processor: Any, state_dict: dict[str, Any] | None = None) -> None:
        """A Hugging Face model folder (weights, config with the label map, processor).

        ``state_dict``: the full weights of a model sharded over processes (gathered by Accelerate), which
        ``model``'s own parameters hold only a shard of.

        A peft model also leaves its adapter (with the trained head) in ``adapter/``, then is merged so that
        the folder itself loads with plain transformers. Saved into a staging folder, then moved into
        place name by name, each name recorded first; a user's file is never replaced.
        """
        from peft import PeftModel

        self._record(self._staging.name)
        shutil.rmtree(self._staging, ignore_errors=True)  # what a killed run left
        if isinstance(model, PeftModel):
            model.save_pretrained(str(self._staging / self.adapter.name))
            processor.save_pretrained(self._staging / self.adapter.name)
            model = model.merge_and_unload()
        model.save_pretrained(self._staging, state_dict=state_dict)
        processor.save_pretrained(self._staging)
        ours = self._recorded()
        if foreign := sorted(
            p.name for p in self._staging.iterdir() if (self.path / p.name).exists() and p.name not in ours
        ):
            raise OutputDirError(
                f"output_dir: '{self.path}' holds {', '.join(foreign)}, which tlhub did not write; the trained model "
                f"is in '{self._staging}': move those files away, then pass --resume to save it"
            )
        for entry in sorted(self._staging.iterdir()):
            self._record(entry.name)
            target = self.path / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
        self._staging.rmdir()

    def write(self, path: Path, content: str | bytes) -> None:
        """Write one file of the run (``path`` under the run directory), recorded first, replaced whole."""
        relative = path.relative_to(self.path)
        self._record(relative.parts[0])
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, content)

    def record_folder(self, folder: Path) -> Path:
        """Record a top-level folder that a library fills (a tracker's logs) before it writes; return it."""
        self._record(folder.relative_to(self.path).parts[0])
        return folder

    def finish(self, metrics: dict[str, Any], recipe_yaml: str, card: str, record: dict[str, Any]) -> None:
        """Write the results, mark the run finished in ``run.json`` and drop the resumable checkpoints."""
        self._record(self.metrics_file.name, self.recipe_file.name, self.card.name)
        replace_file(self.metrics_file, json.dumps(metrics, indent=2))
        replace_file(self.recipe_file, recipe_yaml)
        replace_file(self.card, card)
        self.update_record(**record, status="finished", finished=True)
        shutil.rmtree(self.checkpoints.folder, ignore_errors=True)
        shutil.rmtree(self.checkpoints.best, ignore_errors=True)


def _alive(pid: Any) -> bool:
    """Whether a process of this machine with that pid exists."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError, TypeError):
        return True  # someone else's process, or not a pid we can check: do not call it gone
    return True


def _is_control(name: str) -> bool:
    return name.startswith(".tlhub")


def replace_file(path: Path, content: str | bytes) -> None:
    """Replace a file whole: written beside it, then renamed over it, so a kill never leaves half a file."""
    temporary = path.with_name(f".tlhub-tmp-{path.name}")
    if isinstance(content, bytes):
        temporary.write_bytes(content)
    else:
        temporary.write_text(content)
    os.replace(temporary, path)


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
