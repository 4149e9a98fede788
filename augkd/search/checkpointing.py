"""When a trial uploads a checkpoint: at ASHA's rung milestones, at its last epoch, and
otherwise at most every ``checkpoint_minutes``. On small datasets an epoch takes a second
and an upload to S3 longer; a checkpoint every epoch would make uploads dominate."""

from __future__ import annotations

import math
import time


def rung_epochs(grace_period: int, reduction_factor: float, max_epochs: int) -> list[int]:
    """The epochs at which ASHA (one bracket) judges a trial: the first epoch at or past each
    milestone grace * rf^k (k = 0, 1, ... while it is at most max_epochs), as Ray computes them."""
    if grace_period > max_epochs:
        return []
    count = int(math.log(max_epochs / grace_period) / math.log(reduction_factor) + 1)
    return sorted({math.ceil(grace_period * reduction_factor**k) for k in range(count)})


class CheckpointCadence:
    def __init__(self, milestones: list[int], minutes: float) -> None:
        self.milestones = set(milestones)
        self.every_s = minutes * 60
        self.last = time.monotonic()

    def due(self, epoch: int, last_epoch: int) -> bool:
        """Whether the report of ``epoch`` should carry a checkpoint; restarts the clock if so."""
        now = time.monotonic()
        if epoch == last_epoch or epoch in self.milestones or now - self.last >= self.every_s:
            self.last = now
            return True
        return False
