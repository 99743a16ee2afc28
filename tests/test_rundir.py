"""The run directory: nothing lost, nothing run that should not be.

``--overwrite`` removes only what tlhub wrote; a run never writes into the working directory, the recipe's or
the base checkpoint's folder; two runs never share a folder; a failed, interrupted, corrupt or unwritable run
directory is explained in one line (exit 2, no traceback) that says how to go on; SIGINT and SIGTERM stop a
run resumably; a checkpoint someone hands you never unpickles code.

Runs are driven in-process through the CLI where one process suffices, and in their own process
(``start_tlhub``, or a cold ``python -m tlhub`` where the signal handling of a real start matters) where they
must run side by side, be killed, or hold files on a file system the test unmounts.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import TlhubProcess, digits_recipe, write_recipe

TLHUB = [sys.executable, "-m", "tlhub"]
LOCK_FILES = {".tlhub.lock", ".tlhub-owner.json"}


# --- helpers ------------------------------------------------------------------------------------------------


def error_line(output: str) -> str:
    """The one ``error:`` line of a refused command; no traceback, no second error."""
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def refused(result: Any, *fragments: str) -> str:
    """Assert an in-process CLI ``result`` exited 2 with one error line holding ``fragments``; return the line."""
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.output[-3000:]}\n{result.exception!r}"
    line = error_line(result.output)
    for fragment in fragments:
        assert fragment in line, line
    return line


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (``None`` for a folder): equal trees mean nothing changed."""
    return {
        str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.name not in LOCK_FILES  # a killed run's stale lock: whoever takes the folder next removes it
    }


def record(out: Path) -> dict[str, Any]:
    return json.loads((out / "run.json").read_text())  # type: ignore[no-any-return]


def recipe_for(folder: Path, tiny_vit: Path, out: Path, **sections: Any) -> Path:
    """A one-epoch digits recipe writing to ``out``, saved as ``folder/recipe.yaml``."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_recipe(folder / "recipe.yaml", digits_recipe(tiny_vit, out, **sections))


def newest_checkpoint(out: Path) -> Path:
    complete = [p.parent for p in (out / "checkpoints").glob("checkpoint_*/COMPLETE")]
    return max(complete, key=lambda p: int(p.name.split("_")[1]))


@pytest.fixture(scope="module")
def interrupted_original(
    tmp_path_factory: pytest.TempPathFactory, tiny_vit: Path, start_tlhub: Any
) -> tuple[Path, Path]:
    """A run of 3 epochs SIGKILLed once its second checkpoint is complete, and a pristine copy beside it."""
    base = tmp_path_factory.mktemp("interrupted")
    out = base / "out"
    recipe = recipe_for(base, tiny_vit, out, train={"epochs": 3, "batch_size": 16, "checkpoint_steps": 2})
    process = start_tlhub("run", recipe, log=base / "log")
    assert process.run_until(lambda: (out / "checkpoints" / "checkpoint_2" / "COMPLETE").exists()), process.err()
    process.kill()
    shutil.copytree(out, base / "pristine", symlinks=True)
    return recipe, out


@pytest.fixture
def interrupted(interrupted_original: tuple[Path, Path]) -> tuple[Path, Path]:
    """The interrupted run as the kill left it (restored for each test, at the path its run.json names)."""
    recipe, out = interrupted_original
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(out.parent / "pristine", out, symlinks=True)
    return recipe, out


@pytest.fixture(scope="module")
def finished_original(tmp_path_factory: pytest.TempPathFactory, tiny_vit: Path) -> Path:
    """A finished one-epoch run (in-process)."""
    from click.testing import CliRunner

    from tlhub.cli import main

    base = tmp_path_factory.mktemp("finished")
    result = CliRunner().invoke(main, ["run", str(recipe_for(base, tiny_vit, base / "out"))])
    assert result.exit_code == 0, result.output
    return base / "out"


@pytest.fixture
def finished(finished_original: Path, tmp_path: Path, tiny_vit: Path) -> tuple[Path, Path]:
    """A copy of the finished run in this test's folder, with a recipe that names it."""
    out = tmp_path / "out"
    shutil.copytree(finished_original, out, symlinks=True)
    return recipe_for(tmp_path, tiny_vit, out), out


# --- 1. --overwrite removes only what tlhub wrote ------------------------------------------------------------


def test_overwrite_keeps_what_the_user_added_to_a_finished_run(cli, tmp_path: Path, tiny_vit: Path) -> None:
    out = tmp_path / "out"
    recipe = recipe_for(tmp_path, tiny_vit, out)
    assert cli("run", recipe).exit_code == 0
    (out / "thesis.pdf").write_bytes(os.urandom(5000))
    (out / "data" / "raw").mkdir(parents=True)
    (out / "data" / "raw" / "digits.csv").write_text("1,2,3\n")
    (out / "data" / "notes.md").write_text("# mine\n")
    mine = {k: v for k, v in tree(out).items() if k.startswith(("thesis.pdf", "data"))}

    result = cli("run", recipe, "train.seed=7", "--overwrite")

    assert result.exit_code == 0, result.output
    assert {k: v for k, v in tree(out).items() if k.startswith(("thesis.pdf", "data"))} == mine
    info = record(out)
    assert info["status"] == "finished" and info["recipe"]["train"]["seed"] == 7, info
    assert info["command"].endswith("train.seed=7 --overwrite"), info["command"]
    assert yaml.safe_load((out / "recipe.yaml").read_text())["train"]["seed"] == 7


def test_overwrite_of_a_folder_of_unrelated_files_writes_beside_them(cli, tmp_path: Path, tiny_vit: Path) -> None:
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (out / "data" / "scan.png").write_bytes(os.urandom(300))
    (out / "notes.txt").write_text("keep me\n")
    mine = tree(out)
    recipe = recipe_for(tmp_path, tiny_vit, out)

    refused(cli("run", recipe), f"'{out}' is not empty and holds no tlhub run", "--overwrite")
    assert tree(out) == mine

    for _ in range(2):  # the second --overwrite replaces a tlhub run that lives beside the user's files
        result = cli("run", recipe, "--overwrite")
        assert result.exit_code == 0, result.output
        assert record(out)["status"] == "finished"
        assert {k: v for k, v in tree(out).items() if k in mine} == mine
    listed = set((out / ".tlhub-manifest").read_text().split())
    assert not listed & {"data", "notes.txt"}, listed


@pytest.mark.parametrize(
    "name",
    [
        "README.md",
        "run.json",
        "metrics.json",
        "recipe.yaml",
        "adapter",
        "checkpoints",
        "best_model",
        # Names transformers picks: a run writes them just as surely.
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ],
)
def test_overwrite_refuses_to_clobber_a_users_file_of_a_name_tlhub_writes(
    cli, tmp_path: Path, tiny_vit: Path, name: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    if name in ("adapter", "checkpoints", "best_model"):
        (out / name).mkdir()
        (out / name / "mine.txt").write_text("the user's\n")
    else:
        (out / name).write_text("{}\n" if name.endswith(".json") else "the user's own file\n")
    mine = tree(out)

    result = cli("run", recipe_for(tmp_path, tiny_vit, out), "--overwrite")

    refused(result, f"'{out}'", name)
    assert tree(out) == mine


# --- 2. places a run never writes -------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [[], ["--overwrite"]], ids=["plain", "overwrite"])
@pytest.mark.parametrize(
    "where",
    [".", "", "..", "recipe folder", "checkpoint folder", "x" * 300],
    ids=["cwd", "empty", "parent-of-cwd", "recipe-folder", "checkpoint-folder", "300-byte-name"],
)
def test_a_run_never_writes_into_the_working_directory_the_recipes_or_the_checkpoints_folder(
    cli, tmp_path: Path, tiny_vit: Path, monkeypatch: pytest.MonkeyPatch, where: str, flags: list[str]
) -> None:
    checkpoint = tmp_path / "base"
    shutil.copytree(tiny_vit, checkpoint)
    recipes = tmp_path / "recipes"
    work = tmp_path / "work" / "inner"
    work.mkdir(parents=True)
    (work / "experiment.py").write_text("print('mine')\n")
    output_dir = {"recipe folder": str(recipes), "checkpoint folder": str(checkpoint)}.get(where, where)
    recipe = recipe_for(recipes, checkpoint, Path("placeholder"))
    recipe.write_text(recipe.read_text().replace("output_dir: placeholder", f"output_dir: '{output_dir}'"))
    monkeypatch.chdir(work)
    before = tree(tmp_path)

    result = cli("run", recipe, *flags)

    refused(result, "output_dir")
    assert tree(tmp_path) == before


# --- 3. one run per folder ------------------------------------------------------------------------------------


def test_two_runs_started_together_into_one_folder_one_runs_the_other_is_refused(
    start_tlhub: Any, tmp_path: Path, tiny_vit: Path
) -> None:
    out = tmp_path / "out"
    recipe = recipe_for(tmp_path, tiny_vit, out, data={"train_samples_per_class": 20}, train={"epochs": 4})
    runs = {seed: start_tlhub("run", recipe, f"train.seed={seed}", log=tmp_path / f"seed{seed}") for seed in (1, 2)}
    codes = {seed: process.wait() for seed, process in runs.items()}

    assert sorted(codes.values()) == [0, 2], {s: (c, runs[s].err()[-1500:]) for s, c in codes.items()}
    winner = next(seed for seed, code in codes.items() if code == 0)
    loser = runs[3 - winner]
    line = error_line(loser.err())
    assert f"output_dir: '{out}' is in use by another tlhub run" in line, line
    command = f"tlhub run {recipe} train.seed={winner}"
    assert f"(pid {runs[winner].pid} on " in line and f": {command})" in line, line
    info = record(out)
    assert info["status"] == "finished" and len(info["history"]) == 4, info
    assert info["command"] == command and info["recipe_file"] == str(recipe), info
    assert info["recipe"]["train"]["seed"] == winner
    assert yaml.safe_load((out / "recipe.yaml").read_text())["train"]["seed"] == winner
    card = (out / "README.md").read_text()
    assert f"```\n{command}\n```" in card, card[-600:]
    assert ".tlhub-owner.json" not in {p.name for p in out.iterdir()}  # the lock file itself stays, unlocked


def test_two_resumes_started_together_one_resumes_the_other_is_refused(
    start_tlhub: Any, interrupted: tuple[Path, Path], tmp_path: Path
) -> None:
    recipe, out = interrupted
    runs = [start_tlhub("run", recipe, "--resume", log=tmp_path / f"resume{i}") for i in range(2)]
    codes = [process.wait() for process in runs]

    assert sorted(codes) == [0, 2], [(c, p.err()[-1500:]) for c, p in zip(codes, runs, strict=True)]
    winner, loser = (runs[0], runs[1]) if codes[0] == 0 else (runs[1], runs[0])
    line = error_line(loser.err())
    assert f"output_dir: '{out}' is in use by another tlhub run (pid {winner.pid} on " in line, line
    assert "resumed from" in winner.out()
    info = record(out)
    assert info["status"] == "finished" and [h["epoch"] for h in info["history"]] == [1, 2, 3], info
    assert ".tlhub-owner.json" not in {p.name for p in out.iterdir()}  # the lock file itself stays, unlocked


# --- 4. failed runs and flags that cannot apply --------------------------------------------------------------


def test_a_failed_run_says_so_and_how_to_go_on(cli, interrupted: tuple[Path, Path]) -> None:
    recipe, out = interrupted
    info = record(out)
    info.update(status="failed", error="No space left on device: /data/out/checkpoints/checkpoint_3")
    (out / "run.json").write_text(json.dumps(info))
    before = tree(out)

    line = refused(cli("run", recipe), f"'{out}' holds a run of {recipe} that failed (No space left on device: ")
    assert "--resume" in line and "--overwrite" in line, line
    assert tree(out) == before

    result = cli("run", recipe, "--resume")  # the cause is "fixed": resuming finishes the run
    assert result.exit_code == 0, result.output
    assert record(out)["status"] == "finished" and record(out).get("error") is None, record(out)


def test_resume_with_nothing_to_resume_is_refused(cli, tmp_path: Path, tiny_vit: Path) -> None:
    missing = tmp_path / "missing"
    refused(cli("run", recipe_for(tmp_path / "a", tiny_vit, missing), "--resume"), "nothing to resume")
    assert not missing.exists(), list(missing.iterdir())

    empty = tmp_path / "empty"
    empty.mkdir()
    refused(cli("run", recipe_for(tmp_path / "b", tiny_vit, empty), "--resume"), f"'{empty}'", "nothing to resume")
    assert list(empty.iterdir()) == []


def test_resume_of_a_finished_run_is_refused(cli, finished: tuple[Path, Path]) -> None:
    recipe, out = finished
    before = tree(out)
    refused(cli("run", recipe, "--resume"), f"'{out}' holds a finished run", "nothing to resume")
    assert tree(out) == before


@pytest.mark.parametrize("state", ["finished", "interrupted"])
def test_resume_and_overwrite_together_are_refused(cli, request: pytest.FixtureRequest, state: str) -> None:
    recipe, out = request.getfixturevalue(state)
    before = tree(out)
    refused(cli("run", recipe, "--resume", "--overwrite"), "--resume and --overwrite")
    assert tree(out) == before


# --- 5. faults of the machine and of the files -----------------------------------------------------------------


@contextlib.contextmanager
def mounted(target: Path, *options: str) -> Iterator[None]:
    """``mount *options target`` for the duration; skips the test where mounting is not permitted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small or read-only file system needs root (CAP_SYS_ADMIN)")
    done = subprocess.run(["mount", *options, str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount is not permitted here: {done.stderr.strip()}")
    try:
        yield
    finally:
        if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], check=True)


def fill(folder: Path) -> Path:
    """Take every free byte of ``folder``'s file system with a file in ``folder``; return that file."""
    filler = folder / "filler"
    with filler.open("wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    with contextlib.suppress(OSError), filler.open("ab") as f:
        while True:
            f.write(b"\0")
            f.flush()
    return filler


def assert_cannot_write(process: TlhubProcess, code: int, out: Path, why: str) -> None:
    assert code == 2, f"exit {code}:\n{process.err()[-3000:]}"
    line = error_line(process.err())
    assert line.startswith("error: ") and f"output_dir: cannot write '{out}" in line and f"({why})" in line, line
    # what to do next depends on whether a checkpoint survived
    resumable = any(out.glob("checkpoints/checkpoint_*/COMPLETE"))
    next_step = (
        "fix that, then pass --resume to continue from the last checkpoint"
        if resumable
        else "fix that, then the run had no checkpoint yet: start it again with --overwrite"
    )
    assert next_step in line, line
    info = record(out)
    assert info["status"] == "failed" and why in info["error"], info


def test_a_full_disk_before_the_first_checkpoint_is_one_line(start_tlhub: Any, tmp_path: Path, tiny_vit: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    out = disk / "out"
    recipe = recipe_for(tmp_path, tiny_vit, out, train={"checkpoint_steps": 2})
    with mounted(disk, "-t", "tmpfs", "-o", "size=64k", "tmpfs"):  # run.json fits; a checkpoint (~0.3 MB) does not
        process = start_tlhub("run", recipe, log=tmp_path / "log")
        assert_cannot_write(process, process.wait(), out, "No space left on device")


def test_a_disk_that_fills_during_a_run_is_one_line_and_the_run_resumes_once_there_is_room(
    start_tlhub: Any, tmp_path: Path, tiny_vit: Path
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    out = disk / "out"
    recipe = recipe_for(tmp_path, tiny_vit, out, train={"epochs": 2, "batch_size": 16, "checkpoint_steps": 2})
    with mounted(disk, "-t", "tmpfs", "-o", "size=8m", "tmpfs"):
        process = start_tlhub("run", recipe, log=tmp_path / "log")
        assert process.run_until(lambda: (out / "checkpoints" / "checkpoint_1" / "COMPLETE").exists()), process.err()
        filler = fill(disk)
        process.cont()
        assert_cannot_write(process, process.wait(), out, "No space left on device")

        filler.unlink()
        resumed = start_tlhub("run", recipe, "--resume", log=tmp_path / "resumed")
        assert resumed.wait() == 0, resumed.err()[-3000:]
        assert [h["epoch"] for h in record(out)["history"]] == [1, 2]


def test_a_read_only_output_folder_is_one_line(cli, tmp_path: Path, tiny_vit: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with mounted(out, "--bind", "-o", "ro", str(out)):
        refused(cli("run", recipe_for(tmp_path, tiny_vit, out)), "output_dir", f"'{out}", "Read-only file system")
    assert list(out.iterdir()) == []


def test_resuming_in_a_read_only_folder_is_one_line_and_changes_nothing(cli, interrupted: tuple[Path, Path]) -> None:
    recipe, out = interrupted
    before = tree(out)
    with mounted(out, "--bind", "-o", "ro", str(out)):
        refused(cli("run", recipe, "--resume"), "output_dir", f"'{out}", "Read-only file system")
    assert tree(out) == before
    result = cli("run", recipe, "--resume")  # writable again: the run goes on
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("content", ["{not json", "", "[]"], ids=["corrupt", "empty", "list"])
@pytest.mark.parametrize("flags", [[], ["--resume"]], ids=["plain", "resume"])
def test_an_unreadable_run_json_is_named_in_one_line(
    cli, finished: tuple[Path, Path], content: str, flags: list[str]
) -> None:
    recipe, out = finished
    (out / "run.json").write_text(content)
    before = tree(out)
    refused(cli("run", recipe, *flags), f"'{out / 'run.json'}'", "run record")
    assert tree(out) == before


@pytest.mark.parametrize("name", ["train_state.json", "model.safetensors", "optimizer.bin"])
def test_a_truncated_checkpoint_is_named_in_one_line_and_the_run_marked_failed(
    cli, interrupted: tuple[Path, Path], name: str
) -> None:
    recipe, out = interrupted
    checkpoint = newest_checkpoint(out)
    data = (checkpoint / name).read_bytes()
    (checkpoint / name).write_bytes(data[: len(data) // 2])

    line = refused(cli("run", recipe, "--resume"), f"output_dir: the checkpoint '{checkpoint}' does not load (")
    assert "--overwrite" in line, line
    info = record(out)
    assert info["status"] == "failed" and "does not load" in info["error"], info

    # The failure stays on record: the next command says so, and how to go on.
    line = refused(cli("run", recipe), f"holds a run of {recipe} that failed (")
    assert "--resume" in line and "--overwrite" in line, line


# --- 6. SIGINT and SIGTERM --------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_a_run_resumably_in_one_line(
    start_tlhub: Any, tmp_path: Path, tiny_vit: Path, number: int
) -> None:
    out = tmp_path / "out"
    recipe = recipe_for(
        tmp_path,
        tiny_vit,
        out,
        data={"train_samples_per_class": None},
        train={"epochs": 4, "batch_size": 16, "checkpoint_steps": 5},
    )
    log = tmp_path / "stderr"
    with log.open("w") as stderr:  # a file, not a pipe: nobody reads while it runs
        process = subprocess.Popen(
            [*TLHUB, "run", str(recipe)],
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        deadline = time.monotonic() + 240
        while not list(out.glob("checkpoints/checkpoint_*/COMPLETE")):
            assert process.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
            time.sleep(0.05)
        process.send_signal(number)
        process.wait(timeout=120)
    err = log.read_text()

    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert (
        err.rstrip().splitlines()[-1]
        == f"interrupted: the run in '{out}' stopped; pass --resume to continue from the last checkpoint"
    ), err[-1000:]
    assert record(out)["status"] == "running"
    resumed = start_tlhub("run", recipe, "--resume", log=tmp_path / "resumed")
    assert resumed.wait() == 0, resumed.err()[-3000:]
    assert [h["epoch"] for h in record(out)["history"]] == [1, 2, 3, 4]


def test_a_signal_before_the_first_checkpoint_says_to_start_again(
    start_tlhub: Any, tmp_path: Path, tiny_vit: Path
) -> None:
    out = tmp_path / "out"
    recipe = recipe_for(tmp_path, tiny_vit, out, train={"epochs": 2, "batch_size": 16, "checkpoint_steps": 6})
    process = start_tlhub("run", recipe, log=tmp_path / "log")
    assert process.run_until(lambda: "epoch 1/2" in process.err()), process.err()
    process.send(signal.SIGTERM)
    process.cont()

    assert process.wait() == 130, process.err()[-3000:]
    assert "Traceback" not in process.err()
    last = process.err().rstrip().splitlines()[-1]
    assert (
        last
        == f"interrupted: the run in '{out}' stopped; the run had no checkpoint yet: start it again with --overwrite"
    ), last
    assert not list(out.glob("checkpoints/checkpoint_*/COMPLETE"))


def test_an_interrupt_closes_every_open_progress_bar_before_its_message(capsys: pytest.CaptureFixture[str]) -> None:
    # A bar that an interrupt caught before anyone held it (inside tqdm's __init__, after its first draw) would
    # be redrawn when collected at exit, after the message; the runner closes every bar tqdm knows first.
    from tqdm.auto import tqdm
    from tqdm.std import tqdm as every

    from tlhub.runner import _close_progress_bars

    orphan = tqdm(range(8), desc="epoch 1/2")
    _close_progress_bars()
    assert orphan not in every._instances
    print("interrupted: ...", file=sys.stderr)
    del orphan
    import gc

    gc.collect()
    assert capsys.readouterr().err.rstrip().splitlines()[-1] == "interrupted: ..."


# --- 7. a checkpoint never unpickles code -----------------------------------------------------------------------


class Payload:
    """Unpickling this creates ``marker``: proof that a checkpoint ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize(
    "files",
    [
        {"custom_checkpoint_0.pkl": "payload", "train_state.json": "garbage"},
        {"custom_checkpoint_0.pkl": "payload"},
        {"optimizer.bin": "payload"},
        {"scheduler.bin": "payload"},
        {"random_states_0.pkl": "payload"},
    ],
    ids=["custom-and-garbage-state", "custom", "optimizer", "scheduler", "random-states"],
)
def test_a_crafted_checkpoint_never_runs_its_pickle(
    cli, interrupted: tuple[Path, Path], tmp_path: Path, files: dict[str, str]
) -> None:
    recipe, out = interrupted
    marker = tmp_path / "MARKER"
    checkpoint = newest_checkpoint(out)
    for name, what in files.items():
        data = pickle.dumps(Payload(marker)) if what == "payload" else b"\x80\x04garbage{{"
        (checkpoint / name).write_bytes(data)

    result = cli("run", recipe, "--resume")

    assert not marker.exists(), "a pickle in the checkpoint ran"
    if set(files) == {"random_states_0.pkl"}:
        # Accelerate loads the RNG states with weights_only and, when that fails, goes on without them: the run
        # resumes (the data order comes from the seedable sampler, not from these states).
        assert result.exit_code == 0, result.output
        assert record(out)["status"] == "finished"
    else:
        # A custom state file that tlhub never registered, or a state torch will not load with weights_only.
        line = refused(result, f"output_dir: the checkpoint '{checkpoint}' does not load (")
        assert "--overwrite" in line, line
