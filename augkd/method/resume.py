"""The epochs of a stage that resumes where it was stopped and keeps its best result so far:
the one loop shape of Modules 1, 2 and 3.

A stage builds one ``BestSoFar`` over its ``TrainingState`` where it would otherwise restore a
saved state; ``first_epoch`` says where its loop starts, ``offer`` keeps a better result, and
``snapshot`` is what a save after an epoch writes (everything to go on exactly, and the best).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, Protocol

from augkd.method.training_state import TrainingState

MakeState = Callable[[], dict[str, Any]]


class Progress(Protocol):
    """Where a long stage keeps its progress (augkd.storage.cache.StageProgress)."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, epoch: int, make_state: MakeState) -> None: ...


class BestSoFar:
    """The best result of a stage so far, by ``score`` (lower is better for ``min``), and the
    epoch its loop starts from: 0, or the one after a resumed state's."""

    def __init__(
        self,
        training: TrainingState,
        score: str,
        mode: Literal["min", "max"],
        resume_state: dict[str, Any] | None = None,
        start: dict[str, Any] | None = None,
    ) -> None:
        self.training, self.score, self.mode = training, score, mode
        self.best: dict[str, Any] = start or {score: math.inf if mode == "min" else -math.inf}
        self.first_epoch = 0
        if resume_state is not None:
            training.restore(resume_state)
            self.best, self.first_epoch = resume_state["best"], int(resume_state["epoch"])

    def offer(self, value: float, epoch: int, keep: Callable[[], dict[str, Any]]) -> bool:
        """Keep ``value`` (reached after ``epoch``) and ``keep()`` when it beats the best."""
        best = self.best[self.score]
        if not (value < best if self.mode == "min" else value > best):
            return False
        self.best = {self.score: value, "epoch": epoch, **keep()}
        return True

    def snapshot(self, epoch: int, **extra: Any) -> MakeState:
        """What a save after ``epoch`` writes: the training state, the best so far, ``extra``."""
        best = self.best
        return lambda: self.training.capture(epoch=epoch, best=best, **extra)
