"""When a trial uploads a checkpoint: at ASHA's rung milestones, at its last epoch, and
otherwise at most every ``checkpoint_minutes``. On small datasets an epoch takes a second
and an upload to S3 longer; a checkpoint every epoch would make uploads dominate."""

from __future__ import annotations

import math
import time


def judged_epochs(milestones: list[float]) -> list[int]:
    """The epochs at which ASHA judges a trial: the first epoch at or past each rung milestone
    (SchedulerSettings.milestones; Ray compares ``epoch >= milestone``)."""
    return sorted({math.ceil(milestone) for milestone in milestones})


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
