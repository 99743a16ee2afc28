"""The summary of a ``tlhub compare`` grid (strategy x examples per class x seed): one row per strategy and
size with the mean and spread over seeds, as data, a Markdown table, CSV, a PNG plot and a short verdict.

Everything here is computed from the finished cells alone, so it can be rebuilt from saved results. The
selection metric is higher-is-better, as ``eval.select_metric`` is everywhere in tlhub. matplotlib is
imported inside :func:`plot` only: ``import tlhub.compare_report`` stays light.
"""

from __future__ import annotations

import csv
import io
import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

BASELINE = "baseline"  # the classical scikit-learn model: no trainable parameters, drawn dashed grey
SCRATCH = "scratch"  # the same network from random weights; every other deep strategy starts pretrained

Outcome = Literal["beats", "ties", "loses"]
_T = TypeVar("_T")


@dataclass(frozen=True)
class CellResult:
    """One finished cell of the grid: a strategy trained on one training-set size with one seed."""

    strategy: str
    per_class: int | None  # labelled examples per class; None: the whole training split
    train_examples: int  # examples actually trained on
    seed: int
    metrics: dict[str, float]  # the test split's metrics, e.g. {"accuracy": 0.93, "loss": 0.2}
    trainable_parameters: int | None  # None for the baseline
    wall_seconds: float
    peak_memory_mb: float | None


@dataclass(frozen=True)
class SummaryRow:
    """One strategy at one size, over its seeds."""

    strategy: str
    per_class: int | None  # None: the whole training split
    seeds: int  # cells (seeds) summarised
    train_examples: float  # mean over the seeds
    mean: dict[str, float]  # per metric; a metric no cell reported is absent
    std: dict[str, float]  # sample standard deviation over the seeds reporting it; 0 for one seed
    trainable_parameters: int | None  # the largest reported; None when no cell reported one
    wall_seconds: float  # mean per cell
    peak_memory_mb: float | None  # the largest over the seeds


def summarize(
    cells: Sequence[CellResult], metrics: Sequence[str], strategies: Sequence[str] | None = None
) -> list[SummaryRow]:
    """One :class:`SummaryRow` per (strategy, per_class), ordered by strategy (``strategies`` if given, then
    any others as first seen in ``cells``) and by size ascending, the whole split (``None``) last.

    A metric is averaged over the cells that report it (a classical baseline may report no loss). Two cells
    with the same strategy, size and seed are a bug in the caller and raise ``ValueError``.
    """
    groups: dict[tuple[str, int | None], list[CellResult]] = {}
    seen: set[tuple[str, int | None, int]] = set()
    for cell in cells:
        key = (cell.strategy, cell.per_class, cell.seed)
        if key in seen:
            raise ValueError(
                f"summarize: two results for strategy {cell.strategy!r}, size {_size(cell.per_class)}, seed {cell.seed}"
            )
        seen.add(key)
        groups.setdefault((cell.strategy, cell.per_class), []).append(cell)

    order = list(dict.fromkeys([*(strategies or []), *(cell.strategy for cell in cells)]))
    rows = [_summarize_group(strategy, per_class, group, metrics) for (strategy, per_class), group in groups.items()]
    rows.sort(key=lambda row: (order.index(row.strategy), *_size_key(row.per_class)))
    return rows


def _summarize_group(
    strategy: str, per_class: int | None, cells: list[CellResult], metrics: Sequence[str]
) -> SummaryRow:
    mean: dict[str, float] = {}
    std: dict[str, float] = {}
    for name in metrics:
        values = [float(cell.metrics[name]) for cell in cells if name in cell.metrics]
        if values:
            mean[name] = statistics.fmean(values)
            std[name] = statistics.stdev(values) if len(values) > 1 else 0.0
    parameters = [cell.trainable_parameters for cell in cells if cell.trainable_parameters is not None]
    memory = [cell.peak_memory_mb for cell in cells if cell.peak_memory_mb is not None]
    return SummaryRow(
        strategy=strategy,
        per_class=per_class,
        seeds=len(cells),
        train_examples=statistics.fmean(cell.train_examples for cell in cells),
        mean=mean,
        std=std,
        trainable_parameters=max(parameters) if parameters else None,
        wall_seconds=statistics.fmean(cell.wall_seconds for cell in cells),
        peak_memory_mb=max(memory) if memory else None,
    )


def _size_key(per_class: int | None) -> tuple[int, int]:
    """Sizes ascending, the whole split last."""
    return (1, 0) if per_class is None else (0, per_class)


def _size(per_class: int | None) -> str:
    return "all" if per_class is None else str(per_class)


def markdown(rows: Sequence[SummaryRow], metrics: Sequence[str], select_metric: str) -> str:
    """A Markdown table of ``rows`` (mean ± std over seeds, 4 decimals), followed by a line saying what the
    bold marks: the highest mean ``select_metric`` at each size where more than one strategy ran."""
    best = _best_rows(rows, select_metric)
    header = [
        "strategy",
        "examples per class",
        *(f"{name} (mean ± std)" for name in metrics),
        "trainable parameters",
        "wall time per cell (s)",
        "peak memory (MB)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    for row in rows:
        cells = [row.strategy, _examples_label(row)]
        for name in metrics:
            text = f"{row.mean[name]:.4f} ± {row.std[name]:.4f}" if name in row.mean else "-"
            cells.append(f"**{text}**" if name == select_metric and id(row) in best else text)
        cells += [
            "-" if row.trainable_parameters is None else f"{row.trainable_parameters:,}",
            f"{row.wall_seconds:,.1f}",
            "-" if row.peak_memory_mb is None else f"{row.peak_memory_mb:,.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    seeds = ", ".join(map(str, sorted({row.seeds for row in rows}))) or "0"
    lines += [
        "",
        f"Test-split metrics, mean ± std over seeds (seeds per row: {seeds}); "
        f"bold: the highest mean {select_metric} at each size.",
    ]
    return "\n".join(lines) + "\n"


def _examples_label(row: SummaryRow) -> str:
    return f"all ({round(row.train_examples):,})" if row.per_class is None else str(row.per_class)


def _best_rows(rows: Sequence[SummaryRow], metric: str) -> set[int]:
    """``id()`` of the rows with the highest mean ``metric`` at their size (all of them on an exact tie),
    at sizes where more than one row reports it."""
    best: set[int] = set()
    for group in _by_size(rows, metric).values():
        if len(group) > 1:
            top = max(row.mean[metric] for row in group)
            best |= {id(row) for row in group if row.mean[metric] == top}
    return best


def _by_size(rows: Sequence[SummaryRow], metric: str) -> dict[int | None, list[SummaryRow]]:
    """The rows reporting ``metric``, by size (sizes ascending, the whole split last), in ``rows`` order."""
    groups: dict[int | None, list[SummaryRow]] = {}
    for row in sorted((r for r in rows if metric in r.mean), key=lambda r: _size_key(r.per_class)):
        groups.setdefault(row.per_class, []).append(row)
    return groups


def csv_text(rows: Sequence[SummaryRow], metrics: Sequence[str]) -> str:
    """``rows`` as CSV: ``strategy, per_class, train_examples, seeds``, then ``<metric>_mean, <metric>_std``
    per metric, then ``trainable_parameters, wall_seconds, peak_memory_mb``. Numbers at full precision; an
    empty field is the whole split (``per_class``) or a value nobody reported."""
    columns = ["strategy", "per_class", "train_examples", "seeds"]
    columns += [f"{name}_{part}" for name in metrics for part in ("mean", "std")]
    columns += ["trainable_parameters", "wall_seconds", "peak_memory_mb"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values: list[object] = [row.strategy, row.per_class, row.train_examples, row.seeds]
        for name in metrics:
            values += [row.mean.get(name), row.std.get(name)]
        values += [row.trainable_parameters, row.wall_seconds, row.peak_memory_mb]
        writer.writerow(["" if value is None else value for value in values])
    return out.getvalue()


def plot(rows: Sequence[SummaryRow], select_metric: str, title: str, *, classes: int) -> bytes:
    """PNG: ``select_metric`` against labelled examples per class (log axis), one line per strategy with a
    band of mean ± std over seeds (none where one seed ran); the classical baseline dashed grey.

    The whole split is drawn at its mean examples per class, ``train_examples / classes``.
    """
    from matplotlib.figure import Figure

    from tlhub import plots

    if classes < 1:
        raise ValueError(f"plot: classes must be at least 1, got {classes}")
    figure = Figure(figsize=(8, 5), dpi=plots.DPI, layout="constrained")
    axes = figure.subplots()
    ticks: dict[float, str] = {}
    colours = (f"C{i}" for i in itertools.count())  # the colour cycle; grey is the baseline's
    by_strategy: dict[str, list[SummaryRow]] = {}
    for row in rows:
        if select_metric in row.mean:
            by_strategy.setdefault(row.strategy, []).append(row)
    for strategy, group in by_strategy.items():
        group.sort(key=lambda row: _size_key(row.per_class))
        xs = [_x(row, classes) for row in group]
        means = [row.mean[select_metric] for row in group]
        stds = [row.std[select_metric] for row in group]
        baseline = strategy == BASELINE
        colour = "grey" if baseline else next(colours)
        axes.plot(
            xs,
            means,
            color=colour,
            linestyle="--" if baseline else "-",
            marker="s" if baseline else "o",
            label="classical baseline" if baseline else strategy,
        )
        if any(s > 0 for s in stds):
            low = [m - s for m, s in zip(means, stds, strict=True)]
            high = [m + s for m, s in zip(means, stds, strict=True)]
            if len(xs) > 1:
                axes.fill_between(xs, low, high, color=colour, alpha=0.15, linewidth=0)
            else:  # a band needs two sizes: one size shows its spread as an error bar
                axes.errorbar(xs, means, yerr=stds, color=colour, capsize=4, linestyle="none")
        for row, x in zip(group, xs, strict=True):
            ticks.setdefault(x, str(row.per_class) if row.per_class is not None else f"all (≈{x:,.0f})")

    axes.set_xscale("log")
    if ticks:
        axes.set_xticks(list(ticks), list(ticks.values()))
        axes.minorticks_off()
        axes.legend(title="strategy", fontsize="small")
    else:
        axes.text(0.5, 0.5, f"no {select_metric} recorded", ha="center", va="center", transform=axes.transAxes)
    spread = any(row.seeds > 1 for group in by_strategy.values() for row in group)
    axes.set(
        title=title,
        xlabel="labelled examples per class (log scale)",
        ylabel=f"test {select_metric}" + (" (mean ± std over seeds)" if spread else ""),
    )
    axes.grid(alpha=0.3)
    # plots owns the PNG rendering (Agg, no pyplot); one renderer for every picture tlhub draws.
    return plots.png_bytes(figure)


def _x(row: SummaryRow, classes: int) -> float:
    return row.train_examples / classes if row.per_class is None else float(row.per_class)


def verdict(rows: Sequence[SummaryRow], select_metric: str) -> str:
    """One or two sentences read off the numbers: which strategy has the highest mean ``select_metric`` at
    each size, then how the best pretrained strategy fares against scratch and the classical baseline
    against the best deep strategy.

    Two strategies are *tied* when their means differ by no more than the sum of their standard deviations
    over seeds (their mean ± std bands on the plot overlap). With one seed per cell there is no spread, so
    only equal means tie, and the verdict says so.
    """
    groups = _by_size(rows, select_metric)
    if not groups:
        return f"No {select_metric} to compare."
    sizes = list(groups)

    winners: dict[int | None, tuple[str, ...]] = {}
    for size, group in groups.items():
        leader = max(group, key=lambda row: row.mean[select_metric])  # the first on an exact tie
        tied = [row for row in group if _outcome(leader, row, select_metric) == "ties"]
        tied.sort(key=lambda row: -row.mean[select_metric])  # stable: the leader first
        winners[size] = tuple(row.strategy for row in tied)
    clauses = []
    for names, where in _grouped(winners, sizes):
        if len(names) == 1:
            clauses.append(f"{_name(names[0])} wins {where}")
        else:
            clauses.append(f"{_and([_name(n) for n in names])} tie (within the spread over seeds) {where}")
    first = f"On test {select_metric}, " + "; ".join(clauses)
    if all(row.seeds == 1 for group in groups.values() for row in group):
        first += " (one seed per cell: no spread to judge ties by)"

    comparisons = []
    pretrained = list(
        dict.fromkeys(r.strategy for g in groups.values() for r in g if r.strategy not in (BASELINE, SCRATCH))
    )
    if pretrained and any(r.strategy == SCRATCH for g in groups.values() for r in g):
        # "at every size" below means every size where both ran.
        versus_scratch: dict[int | None, Outcome] = {}
        for size, group in groups.items():
            scratch = next((r for r in group if r.strategy == SCRATCH), None)
            best = _top([r for r in group if r.strategy in pretrained], select_metric)
            if scratch is not None and best is not None:
                versus_scratch[size] = _outcome(best, scratch, select_metric)
        label = f"best of {'/'.join(pretrained)}" if len(pretrained) > 1 else pretrained[0]
        said = {"beats": "beats scratch", "ties": "ties with scratch", "loses": "is beaten by scratch"}
        comparisons.append(f"pretrained ({label}) " + _and([f"{said[o]} {w}" for o, w in _grouped(versus_scratch)]))
    versus_deep: dict[int | None, Outcome] = {}
    for size, group in groups.items():
        baseline = next((r for r in group if r.strategy == BASELINE), None)
        deep = _top([r for r in group if r.strategy != BASELINE], select_metric)
        if baseline is not None and deep is not None:
            versus_deep[size] = _outcome(baseline, deep, select_metric)
    if versus_deep:
        said = {"beats": "beats every deep strategy", "ties": "ties with the best deep strategy", "loses": "is beaten"}
        comparisons.append("the classical baseline " + _and([f"{said[o]} {w}" for o, w in _grouped(versus_deep)]))

    sentences = [first, *(["; ".join(comparisons)] if comparisons else [])]
    return " ".join(s[0].upper() + s[1:] + "." for s in sentences)


def _outcome(a: SummaryRow, b: SummaryRow, metric: str) -> Outcome:
    """How ``a`` fares against ``b``: a difference within the sum of their standard deviations is a tie."""
    difference = a.mean[metric] - b.mean[metric]
    # The slack keeps equal scores equal after float averaging (one seed: no spread at all).
    if abs(difference) <= a.std[metric] + b.std[metric] + 1e-12:
        return "ties"
    return "beats" if difference > 0 else "loses"


def _top(rows: list[SummaryRow], metric: str) -> SummaryRow | None:
    return max(rows, key=lambda row: row.mean[metric]) if rows else None


def _grouped(by_size: dict[int | None, _T], sizes: list[int | None] | None = None) -> list[tuple[_T, str]]:
    """Each distinct value with where it holds ("at 2 and 5 examples per class"), in order of first size."""
    sizes = sizes if sizes is not None else sorted(by_size, key=_size_key)
    values: dict[_T, list[int | None]] = {}
    for size in sizes:
        values.setdefault(by_size[size], []).append(size)
    return [(value, _where(held, sizes)) for value, held in values.items()]


def _where(held: list[int | None], sizes: list[int | None]) -> str:
    """Where a statement holds: ``held`` among all ``sizes`` (both ascending, the whole split last)."""
    if held == sizes and len(sizes) > 1:
        return "at every size"
    start = sizes.index(held[0])
    contiguous = sizes[start : start + len(held)] == held
    if contiguous and len(held) > 1 and held[0] is not None and start + len(held) == len(sizes):
        return f"from {held[0]} examples per class on"
    numbers = [size for size in held if size is not None]
    if contiguous and len(numbers) > 2 and len(numbers) == len(held):
        return f"from {numbers[0]} to {numbers[-1]} examples per class"
    parts = [f"at {_and([str(n) for n in numbers])} examples per class"] if numbers else []
    if None in held:
        parts.append("with the whole training split")
    return " and ".join(parts)


def _and(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _name(strategy: str) -> str:
    return "the classical baseline" if strategy == BASELINE else strategy
