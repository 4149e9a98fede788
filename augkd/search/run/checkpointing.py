"""When a trial uploads a checkpoint: at ASHA's rungs, at its last report, and otherwise at
most every ``checkpoint_minutes``. On small datasets a report comes every second and an
upload to S3 takes longer; a checkpoint every report would make uploads dominate."""

from __future__ import annotations

import time


class CheckpointCadence:
    def __init__(self, milestones: list[float], minutes: float) -> None:
        self.pending = sorted(milestones)
        """Rungs (optimizer steps) not yet passed: ASHA judges a trial at its first report at
        or past each one (Ray compares ``step >= milestone``)."""
        self.every_s = minutes * 60
        self.last = time.monotonic()

    def due(self, step: float, final: bool) -> bool:
        """Whether the report at ``step`` should carry a checkpoint; restarts the clock if so."""
        judged = bool(self.pending) and step >= self.pending[0]
        self.pending = [milestone for milestone in self.pending if milestone > step]
        now = time.monotonic()
        if final or judged or now - self.last >= self.every_s:
            self.last = now
            return True
        return False
