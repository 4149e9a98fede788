"""A trained stage's artifact, produced one way: read from the stage cache under its key, else
trained once from its own random stream (augkd.basics.seeds), resumable from the progress it
saves in the cache (augkd.method.resume), and timed. augkd.method.stages runs Module 1, the
encoder's adaptation and Module 2 through it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from augkd.basics.eta import StepHook
from augkd.basics.metric_names import stage_seconds
from augkd.basics.seeds import Stream, stage_seed
from augkd.hardware.runtime import seed_everything
from augkd.method.resume import Progress
from augkd.storage.cache import StageCache

Train = Callable[[torch.Generator, Progress], dict[str, Any]]
"""A stage's training: (its random stream for batches, its progress) -> its artifact."""


@dataclass(frozen=True)
class TrainedStage:
    """A stage whose artifact the cache keeps: its name (as its seconds are reported and
    augkd.method.memory estimates it), its folder in the cache, and its random stream."""

    name: str
    folder: str
    stream: Stream


@dataclass
class StageRuns:
    """How this trial's trained stages run: where their artifacts are kept, the seed their
    streams derive from, how often a long one saves its progress, where they report."""

    cache: StageCache
    seed: int
    checkpoint_every_s: float
    log: Callable[[str], None] = print
    on_step: StepHook | None = None
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds each stage took to produce or read (``module1_seconds`` ...)."""

    def artifact(self, stage: TrainedStage, key: str, train: Train) -> dict[str, Any]:
        """The artifact of ``stage`` under ``key``: read from the cache, else trained from its
        own stream (the global one seeded, and a generator for its batches)."""

        def produce() -> dict[str, Any]:
            seed = stage_seed(self.seed, stage.stream)
            rng = torch.Generator().manual_seed(seed)
            seed_everything(seed)
            return train(rng, self.cache.progress(stage.folder, key, self.checkpoint_every_s))

        start = time.perf_counter()
        artifact = self.cache.get_or_create(stage.folder, key, produce)
        self.timings[stage_seconds(stage.name)] = time.perf_counter() - start
        return artifact
