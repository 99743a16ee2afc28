"""Which parameters train in which epoch, and at which learning rate: the blocks of ``full``'s schedules.

The optimizer gets one parameter group per block, from the top: group 0 holds the new head and every
trainable parameter the plugin's blocks do not hold; then the plugin's blocks (``Modality.layers``) from
the output side down to the input side. Under layer-wise decay group ``i`` trains at
``learning_rate * layer_decay ** i``; under gradual unfreezing only group 0 trains for the first
``head_epochs`` epochs, then ``layers_per_epoch`` more groups each epoch (or all at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tlhub.tuning.parameters import is_under

if TYPE_CHECKING:
    from torch import nn

    from tlhub.modality import Modality
    from tlhub.tuning.full import Options


@dataclass(frozen=True)
class Schedule:
    """Parameter names per group (group 0: the head, then the blocks from the top down), each group's
    learning-rate scale, and the unfreezing schedule (``head_epochs == 0``: every group trains from the start)."""

    groups: list[list[str]]
    scales: list[float]
    head_epochs: int = 0
    groups_per_epoch: int | None = None  # after head_epochs; None: all at once

    def training_groups(self, epoch: int) -> int:
        """How many groups, from the top, train in ``epoch`` (0-based)."""
        if epoch < self.head_epochs:
            return 1
        if self.groups_per_epoch is None:
            return len(self.groups)
        return min(len(self.groups), 1 + (epoch - self.head_epochs + 1) * self.groups_per_epoch)

    def describe(self, learning_rate: float) -> list[str]:
        """One line per group for the run's output: its size, rate and the epoch it starts training."""
        starts: dict[int, int] = {}
        for epoch in range(self.head_epochs + len(self.groups) + 1):
            for group in range(self.training_groups(epoch)):
                starts.setdefault(group, epoch + 1)
        return [
            f"group {i}: {len(names)} tensors from {names[0]}, learning rate {learning_rate * scale:.3g}, "
            f"trains from epoch {starts[i]}"
            for i, (names, scale) in enumerate(zip(self.groups, self.scales, strict=True))
            if names
        ]


def full_schedule(model: nn.Module, options: Options, modality: Modality) -> Schedule | None:
    """The schedule of ``full``'s options for ``model`` (its trainable parameters as they stand after
    ``apply``); ``None`` when neither ``unfreeze`` nor ``layer_decay`` is set."""
    if options.unfreeze is None and options.layer_decay is None:
        return None
    blocks = list(reversed(modality.blocks(model.config)))  # from the top
    groups: list[list[str]] = [[] for _ in range(len(blocks) + 1)]
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue  # frozen by tuning.full.freeze or the plugin's fixed modules
        depth = next((i + 1 for i, block in enumerate(blocks) if is_under(name, list(block))), 0)
        groups[depth].append(name)
    # a block frozen whole (tuning.full.freeze) leaves an empty group: drop it, so depths count trained blocks
    kept = [groups[0]] + [g for g in groups[1:] if g]
    decay = options.layer_decay or 1.0
    unfreeze = options.unfreeze
    return Schedule(
        groups=kept,
        scales=[decay**i for i in range(len(kept))],
        head_epochs=unfreeze.head_epochs if unfreeze else 0,
        groups_per_epoch=unfreeze.layers_per_epoch if unfreeze else None,
    )
