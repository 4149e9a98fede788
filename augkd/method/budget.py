"""Stage budgets in optimizer steps, the unit that means the same on any data size.

A budget in epochs is 2 steps an epoch on 150 images and 6 on 720, so epochs that converge on
one data set are far too few on a smaller one. A stage states its budget in ``steps`` and
runs the epochs those take (the last one cut short); an explicit ``epochs`` wins, for
settings that must match a paper's epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class StepBudget:
    """How many optimizer steps a stage takes, and over how many epochs."""

    steps: int
    epochs: int
    steps_per_epoch: int

    def steps_in_epoch(self, epoch: int) -> int:
        """Optimizer steps of epoch ``epoch`` (0-based): full epochs, then what is left."""
        return max(0, min(self.steps_per_epoch, self.steps - epoch * self.steps_per_epoch))


def steps_per_epoch(train_size: int, batch_size: int, min_batch: int = 1) -> int:
    """Optimizer steps in one pass over ``train_size`` images (a last batch smaller than
    ``min_batch`` is skipped, as BatchNorm-training stages do with a single image)."""
    full, rest = divmod(train_size, batch_size)
    return max(1, full + (1 if rest >= min_batch else 0))


def step_budget(
    steps: int, epochs: int | None, train_size: int, batch_size: int, min_batch: int = 1
) -> StepBudget:
    """``epochs`` set: exactly that many whole epochs; else ``steps`` steps."""
    per_epoch = steps_per_epoch(train_size, batch_size, min_batch)
    if epochs is not None:
        return StepBudget(epochs * per_epoch, epochs, per_epoch)
    return StepBudget(steps, math.ceil(steps / per_epoch), per_epoch)
