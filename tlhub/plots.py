"""Pictures of a run, as PNG bytes: the training curves and a confusion matrix.

Drawn with matplotlib's object API on a ``Figure`` of their own (no pyplot: nothing global changes) and
the Agg renderer, so they work without a display. matplotlib is imported inside each function:
``import tlhub`` stays light.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from numpy.typing import NDArray

DPI = 100
_MAX_CLASSES = 50  # a confusion matrix grows with its classes up to this many, then its cells shrink


def curves(
    log: Sequence[dict[str, Any]],
    history: Sequence[dict[str, Any]],
    metric: str,
    best_epoch: int | None = None,
) -> bytes:
    """Three panels: training loss per logged step; validation ``metric`` and loss per epoch, the best epoch
    marked; learning rate per step.

    ``log`` holds the engine's entries (``step``, ``epoch``, ``train_loss``, ``learning_rate``), ``history``
    one entry per epoch (``epoch``, ``train_loss``, ``validation_<name>``). ``best_epoch`` defaults to the
    first epoch with the highest ``metric``.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15, 4.8), dpi=DPI, layout="constrained")
    loss_axes, metric_axes, rate_axes = figure.subplots(1, 3)
    steps = [entry["step"] for entry in log]

    loss_axes.plot(
        steps, [entry["train_loss"] for entry in log], color="tab:blue", marker="." if len(log) < 50 else None
    )
    loss_axes.set(
        title="Training loss",
        xlabel="optimizer step (grey lines: ends of epochs)",
        ylabel="mean loss since the previous point",
    )
    _mark_epochs(loss_axes, log)

    epochs = [entry["epoch"] for entry in history]
    scores = [entry.get(f"validation_{metric}") for entry in history]
    metric_axes.plot(epochs, scores, color="tab:green", marker="o", label=f"validation {metric}")
    metric_axes.set(title=f"Validation {metric} and loss", xlabel="epoch", ylabel=metric)
    if epochs:
        metric_axes.set_xticks(epochs if len(epochs) <= 20 else epochs[:: len(epochs) // 10 + 1])
    handles = metric_axes.get_lines()
    losses = [entry.get("validation_loss") for entry in history]
    if any(v is not None for v in losses):
        loss_twin = metric_axes.twinx()
        loss_twin.plot(epochs, losses, color="tab:red", marker="s", linestyle="--", label="validation loss")
        loss_twin.plot(
            epochs,
            [entry.get("train_loss") for entry in history],
            color="tab:blue",
            marker="^",
            linestyle=":",
            label="training loss (epoch mean)",
        )
        loss_twin.set_ylabel("loss")
        handles = [*handles, *loss_twin.get_lines()]
    known = [(e, s) for e, s in zip(epochs, scores, strict=True) if s is not None]
    if best_epoch is None and known:
        best_epoch = max(known, key=lambda pair: pair[1])[0]
    best = next(((e, s) for e, s in known if e == best_epoch), None)
    if best is not None:
        marker = metric_axes.scatter(
            [best[0]],
            [best[1]],
            s=220,
            facecolors="none",
            edgecolors="black",
            linewidths=2,
            zorder=5,
            label=f"best epoch {best[0]}: {best[1]:.4f}",
        )
        metric_axes.axvline(best[0], color="black", linewidth=0.8, linestyle=":")
        handles = [*handles, marker]
    # Below the panel: inside, it would hide the curves it explains.
    metric_axes.legend(
        handles=handles,
        labels=[h.get_label() for h in handles],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncols=2,
        fontsize="small",
        frameon=False,
    )

    rate_axes.plot(steps, [entry["learning_rate"] for entry in log], color="tab:purple")
    rate_axes.set(title="Learning rate", xlabel="optimizer step (grey lines: ends of epochs)", ylabel="learning rate")
    rate_axes.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    _mark_epochs(rate_axes, log)

    for axes in (loss_axes, metric_axes, rate_axes):
        axes.grid(alpha=0.3)
        if not axes.has_data():
            axes.text(0.5, 0.5, "nothing recorded", ha="center", va="center", transform=axes.transAxes)
    return png_bytes(figure)


def _mark_epochs(axes: Axes, log: Sequence[dict[str, Any]]) -> None:
    """Faint vertical lines where an epoch ends (the first logged step at or past each whole epoch)."""
    seen: set[int] = set()
    for entry in log:
        whole = int(entry["epoch"])
        if whole >= 1 and whole not in seen and len(seen) < 30:
            seen.add(whole)
            axes.axvline(entry["step"], color="grey", linewidth=0.6, alpha=0.4)


def confusion_matrix(matrix: Sequence[Sequence[int]] | NDArray[Any], labels: Sequence[str], title: str) -> bytes:
    """A confusion matrix (rows: true class, columns: predicted class) with the count in its cells and the
    class names on both axes, sized to the number of classes; names are shortened to 24 characters.

    Above 15 classes an empty cell off the diagonal is left blank, so that the mistakes stand out; above 50
    the picture stops growing and shows colours only (no counts), with smaller names.
    """
    from matplotlib.figure import Figure

    counts = [[int(v) for v in row] for row in matrix]
    n = len(labels)
    if len(counts) != n or any(len(row) != n for row in counts):
        raise ValueError(f"confusion_matrix: a {n}x{n} matrix is needed for {n} labels")
    names = [name if len(name) <= 24 else name[:23] + "…" for name in map(str, labels)]
    longest = max((len(name) for name in names), default=1)
    cell = 0.5 if n <= 12 else 0.38 if n <= 25 else 0.32  # inches per class: room for a count
    side = min(max(n * cell, 3.0), _MAX_CLASSES * 0.32)
    margin = 0.8 + 0.075 * longest  # room for the names
    figure = Figure(figsize=(side + margin + 1.8, side + margin + 0.9), dpi=DPI, layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(counts, cmap="Blues", interpolation="nearest", aspect="equal", vmin=0)
    figure.colorbar(image, ax=axes, shrink=0.8, label="examples")
    ticks = list(range(n))
    size = 10 if n <= 12 else 8 if n <= 25 else 7 if n <= _MAX_CLASSES else max(3, 7 * _MAX_CLASSES / n)
    rotate = longest > (6 if n <= 12 else 4 if n <= 25 else 2)  # names wider than their column
    axes.set_xticks(
        ticks,
        names,
        rotation=60 if rotate else 0,
        ha="right" if rotate else "center",
        rotation_mode="anchor",
        fontsize=size,
    )
    axes.set_yticks(ticks, names, fontsize=size)
    axes.set(title=title, xlabel="predicted class", ylabel="true class")
    highest = max((v for row in counts for v in row), default=0)
    cell_font = 11 if n <= 12 else 8 if n <= 25 else 6
    for i, row in enumerate(counts):
        for j, value in enumerate(row):
            if n <= _MAX_CLASSES and (value or i == j or n <= 15):
                dark = highest > 0 and value > highest / 2
                axes.text(
                    j, i, str(value), ha="center", va="center", fontsize=cell_font, color="white" if dark else "black"
                )
    return png_bytes(figure)


def png_bytes(figure: Figure) -> bytes:
    """``figure`` as PNG bytes, rendered by Agg."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)  # the Agg renderer, whatever backend pyplot would pick
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
