"""`tlhub compare`: the grid's cells, their data, resuming an interrupted grid, and the summary."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import digits_recipe, write_recipe
from tlhub import comparison as compare_module
from tlhub.data import INDEX_COLUMN
from tlhub.errors import Interrupted
from tlhub.recipe import CompareSection, read_yaml


def grid_recipe(tmp_path: Path, checkpoint: Path, **grid: Any) -> Path:
    section = {"strategies": ["baseline", "head", "full"], "samples_per_class": [2, 4], "seeds": [0], **grid}
    recipe = digits_recipe(checkpoint, tmp_path / "run", train={"epochs": 2}, compare=section)
    return write_recipe(tmp_path / "recipe.yaml", recipe)


def test_compare_runs_every_cell_and_writes_one_summary(tmp_path: Path, tiny_vit: Path, cli: Any) -> None:
    recipe = grid_recipe(tmp_path, tiny_vit)
    result = compare_module.compare(recipe, progress=False)

    names = [(c.strategy, c.per_class, c.seed) for c in result.cells]
    assert names == [(s, k, 0) for k in (2, 4) for s in ("baseline", "head", "full")]
    folder = tmp_path / "run-compare"
    assert result.folder == folder
    for cell in result.cells:
        assert cell.train_examples == 10 * cell.per_class
        assert 0 <= cell.metrics["accuracy"] <= 1 and cell.metrics["examples"] == 360
        assert (cell.trainable_parameters is None) == (cell.strategy == "baseline")
    # the summary: Markdown, CSV and PNG, from the same rows
    table = (folder / "compare.md").read_text()
    assert all(f"| {s} | {k} |" in table for s in ("baseline", "head", "full") for k in (2, 4))
    assert result.verdict in table
    rows = list(csv.DictReader(io.StringIO((folder / "compare.csv").read_text())))
    assert [(r["strategy"], r["per_class"]) for r in rows] == [
        (s, k) for s in ("baseline", "head", "full") for k in ("2", "4")
    ]
    assert (folder / "compare.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    # each deep cell is a normal run directory that `tlhub eval` takes
    cell_dir = folder / "cells" / "full-n4-seed0"
    assert json.loads((cell_dir / "run.json").read_text())["status"] == "finished"
    evaluated = cli("eval", cell_dir, "--output", tmp_path / "eval")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["examples"] == 360


def test_subsets_are_nested_and_every_cell_tests_on_the_same_examples(tmp_path: Path, tiny_vit: Path) -> None:
    from tlhub.plan import make_plan

    recipe = grid_recipe(tmp_path, tiny_vit, samples_per_class=[1, 3, None])
    data = read_yaml(recipe)
    section = CompareSection.model_validate(data["compare"])
    train: dict[tuple[str, int | None], set[int]] = {}
    tests: set[tuple[int, ...]] = set()
    validations: set[tuple[int, ...]] = set()
    for cell in compare_module.grid(section):
        if cell.strategy == "baseline":
            continue
        cell_recipe, _ = compare_module._cell_recipe(data, section, cell, tmp_path / "c", 2, str(recipe))
        plan = make_plan(cell_recipe)
        train[cell.strategy, cell.per_class] = set(plan.splits.train[INDEX_COLUMN])
        tests.add(tuple(plan.splits.test[INDEX_COLUMN]))
        validations.add(tuple(plan.splits.validation[INDEX_COLUMN]))
    assert len(tests) == 1 and len(validations) == 1  # every cell: the same test and validation examples
    for size in (1, 3, None):
        assert train["head", size] == train["full", size]  # identical across strategies
    assert len(train["head", 1]) == 10 and len(train["head", 3]) == 30
    assert train["head", 1] < train["head", 3] < train["head", None]  # nested
    assert not train["head", None] & set(next(iter(tests)))


def test_an_interrupted_compare_goes_on_without_rerunning_finished_cells(
    tmp_path: Path, tiny_vit: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tlhub import engine, runner

    recipe = grid_recipe(tmp_path, tiny_vit, strategies=["head", "full"], samples_per_class=[2], seeds=[0, 1])
    real_run, real_save = runner.run, engine._save_checkpoint
    calls: list[tuple[str, bool]] = []
    interrupt = {"armed": False}

    def run(source: Any, overrides: dict[str, Any], **kwargs: Any) -> Any:
        calls.append((Path(overrides["output_dir"]).name, kwargs["resume"]))
        interrupt["armed"] = len(calls) == 3  # the third cell (full, seed 0) is killed after its first save
        return real_run(source, overrides, **kwargs)

    def save(*args: Any) -> None:
        real_save(*args)
        if interrupt["armed"]:
            raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run", run)
    monkeypatch.setattr(engine, "_save_checkpoint", save)
    with pytest.raises(Interrupted, match="run the same command again to go on"):
        compare_module.compare(recipe, progress=False)
    finished = json.loads((tmp_path / "run-compare" / "cells.json").read_text())
    assert sorted(finished) == ["head-n2-seed0", "head-n2-seed1"]
    assert calls == [("head-n2-seed0", False), ("head-n2-seed1", False), ("full-n2-seed0", False)]

    calls.clear()
    interrupt["armed"] = False
    monkeypatch.setattr(engine, "_save_checkpoint", real_save)
    result = compare_module.compare(recipe, progress=False)
    # the interrupted cell resumes from its checkpoint; finished cells are not run again
    assert calls == [("full-n2-seed0", True), ("full-n2-seed1", False)]
    assert len(result.cells) == 4
    assert sorted(json.loads((tmp_path / "run-compare" / "cells.json").read_text())) == [
        "full-n2-seed0",
        "full-n2-seed1",
        "head-n2-seed0",
        "head-n2-seed1",
    ]


def test_flags_override_the_section_and_bad_grids_are_refused(tmp_path: Path, tiny_vit: Path, cli: Any) -> None:
    recipe = grid_recipe(tmp_path, tiny_vit)
    unknown = cli("compare", recipe, "--strategies", "head,heads")
    assert unknown.exit_code == 2
    assert (
        "compare.strategies: 'heads' is not a known strategy (known: baseline, full, head, lora, scratch, unfreeze); "
        "did you mean 'head'?" in unknown.output
    ), unknown.output
    assert "Traceback" not in unknown.output and not (tmp_path / "run-compare").exists()

    sizes = cli("compare", recipe, "--sizes", "2,two")
    assert sizes.exit_code == 2 and "'2,two' is not a comma-separated list" in sizes.output

    bad_key = cli("compare", recipe, "compare.strategy_overrides.head.tuning.head.rate=0.1")
    assert bad_key.exit_code == 2
    assert "compare strategy 'head': tuning.head.rate: unknown key" in bad_key.output, bad_key.output

    own = cli("compare", recipe, "compare.strategy_overrides.mine.train.epochs=1", "--strategies", "mine")
    assert own.exit_code == 2 and "compare.strategy_overrides: mine: a strategy of your own must set" in own.output

    repeated = cli("compare", recipe, "--seeds", "0,0")
    assert repeated.exit_code == 2 and "compare.seeds: 0 listed more than once" in repeated.output, repeated.output


def test_a_folder_holding_another_recipes_compare_is_refused(tmp_path: Path, tiny_vit: Path, cli: Any) -> None:
    recipe = grid_recipe(tmp_path, tiny_vit, strategies=["baseline"], samples_per_class=[2])
    assert cli("compare", recipe).exit_code == 0
    other = cli("compare", recipe, "data.split_seed=1")
    assert other.exit_code == 2
    assert "holds a compare of another recipe (or other overrides)" in other.output
    # the same recipe with a larger grid goes on in the same folder
    wider = cli("compare", recipe, "--seeds", "0,1")
    assert wider.exit_code == 0, wider.output
    assert len(json.loads((tmp_path / "run-compare" / "cells.json").read_text())) == 2


def test_unfreeze_trains_the_head_alone_for_a_third_of_the_epochs(tmp_path: Path, tiny_vit: Path) -> None:
    recipe = grid_recipe(tmp_path, tiny_vit)
    data = read_yaml(recipe)
    section = CompareSection.model_validate({**data["compare"], "strategies": ["unfreeze", "scratch"]})
    unfreeze, scratch = (
        compare_module._cell_recipe(data, section, compare_module.Cell(s, 2, 0), tmp_path, 9, str(recipe))[0]
        for s in ("unfreeze", "scratch")
    )
    assert unfreeze.tuning.strategy == "full" and unfreeze.tuning.full.unfreeze is not None
    assert unfreeze.tuning.full.unfreeze.head_epochs == 3 and unfreeze.train.epochs == 9
    assert scratch.model.init == "random" and scratch.tuning.strategy == "full"
    assert unfreeze.compare is None and unfreeze.data.train_samples_per_class == 2


def test_a_killed_compare_finishes_when_started_again(tmp_path: Path, tiny_vit: Path, start_tlhub: Any) -> None:
    """SIGKILL while a cell trains (its first checkpoint written), then the same command again."""
    recipe = grid_recipe(tmp_path, tiny_vit, strategies=["full"], samples_per_class=[2], seeds=[0, 1])
    folder = tmp_path / "run-compare"
    second = folder / "cells" / "full-n2-seed1" / "checkpoints"

    process = start_tlhub("compare", recipe, log=tmp_path / "killed")
    assert process.run_until(lambda: second.is_dir() and any(second.glob("*/COMPLETE")))
    assert process.kill() == -9
    finished = json.loads((folder / "cells.json").read_text())
    assert list(finished) == ["full-n2-seed0"]
    first = (folder / "cells" / "full-n2-seed0" / "run.json").read_text()

    again = start_tlhub("compare", recipe, log=tmp_path / "again")
    assert again.wait() == 0, again.err()[-2000:]
    assert sorted(json.loads((folder / "cells.json").read_text())) == ["full-n2-seed0", "full-n2-seed1"]
    assert (folder / "cells" / "full-n2-seed0" / "run.json").read_text() == first  # not run again
    resumed = json.loads((folder / "cells" / "full-n2-seed1" / "run.json").read_text())
    assert resumed["status"] == "finished"
    assert "resumed from" in (folder / "logs" / "full-n2-seed1.log").read_text()


def test_cells_whose_settings_changed_run_again(
    tmp_path: Path, tiny_vit: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tlhub import runner

    recipe = grid_recipe(tmp_path, tiny_vit, strategies=["baseline", "head", "full"], samples_per_class=[2])
    compare_module.compare(recipe, progress=False)
    real_run = runner.run
    ran: list[str] = []

    def run(source: Any, overrides: dict[str, Any], **kwargs: Any) -> Any:
        ran.append(Path(overrides["output_dir"]).name)
        assert kwargs["overwrite"] and not kwargs["resume"]  # the old finished run is replaced
        return real_run(source, overrides, **kwargs)

    monkeypatch.setattr(runner, "run", run)
    changed = compare_module.compare(recipe, ["compare.strategy_overrides.head.train.epochs=3"], progress=False)
    assert ran == ["head-n2-seed0"]  # the baseline and full cells kept their results
    head = json.loads((tmp_path / "run-compare" / "cells" / "head-n2-seed0" / "run.json").read_text())
    assert head["recipe"]["train"]["epochs"] == 3 and len(head["history"]) == 3
    assert [c.strategy for c in changed.cells] == ["baseline", "head", "full"]


def test_a_retrained_base_runs_the_deep_cells_again(tmp_path: Path, tiny_vit: Path) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    base = Path(shutil.copytree(tiny_vit, tmp_path / "base"))
    recipe = grid_recipe(tmp_path, base, strategies=["baseline", "head"], samples_per_class=[2])
    compare_module.compare(recipe, progress=False)
    cell = tmp_path / "run-compare" / "cells" / "head-n2-seed0" / "run.json"
    first = json.loads(cell.read_text())["started"]
    compare_module.compare(recipe, progress=False)
    assert json.loads(cell.read_text())["started"] == first  # nothing changed: nothing ran
    tensors = load_file(str(base / "model.safetensors"))
    for name in tensors:
        tensors[name] = tensors[name] * 0.5  # the base "retrained" in place, under the same path
    save_file(tensors, str(base / "model.safetensors"), metadata={"format": "pt"})
    compare_module.compare(recipe, progress=False)
    again = json.loads(cell.read_text())
    assert again["started"] != first and again["status"] == "finished"
