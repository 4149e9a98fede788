"""Timing one step of a stage for ``--estimate`` (prepare/calibration.py): untimed warm-up
calls first, then a few timed ones, and the stage's peak memory meanwhile. A first call is
mostly one-time set-up on small shapes, and most of a long call's cost on large ones, so the
warm-up's length decides what is measured."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from augkd.basics.eta import Rate

TIMED = {"teacher": 3, "module1": 1, "encoder": 3, "module2": 3, "module3": 3}
"""Timed calls per stage: enough for a rate within the noise of a shared machine."""

WHOLE_EPOCH_STEPS = 8
"""A Module-2 or Module-3 epoch of at most this many steps is timed whole: its partial last
batch makes an average step cheaper than its first (fonts: 128 + 22 images)."""

WARMUP = 1
"""Untimed iterations before each timed batch of them (allocations, autotuning)."""


LONG_STEP_S = 5.0
"""After a warm-up call this long, one more call is timed instead of the stage's few."""
WARMUP_IS_MEASUREMENT_S = 60.0
"""A warm-up call this long is timed as the measurement itself (its warm-up share is small):
a Module-1 iteration at release shapes on a slow device takes minutes. Below it the warm-up
is not: the fonts space's first Module-1 iteration took 6.5 s on a loaded CPU, its next ones
well under one (one-time kernel and allocator set-up), and taken as the rate it forecast
Module 1 at 1h48m."""


class StepTimer:
    """Seconds per call of a stage's step, after WARMUP untimed calls, and the stage's peak
    memory meanwhile (MiB: CUDA's reserved peak on a GPU, else the process's RSS)."""

    def __init__(self, device: Any) -> None:
        import torch

        self.device = device
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.peaks: dict[str, float] = {}

    def __call__(self, stage: str, step: Callable[[], Any], count: int) -> float:
        from augkd.hardware.peaks import PEAK_GPU_RESERVED, PEAK_RSS, peak_memory, reset_peak

        reset_peak(self.device)
        started = time.perf_counter()
        for _ in range(WARMUP):
            step()
        self.sync()
        seconds = time.perf_counter() - started
        if seconds < WARMUP_IS_MEASUREMENT_S * WARMUP:  # else the warm-up is the measurement
            count = count if seconds < LONG_STEP_S * WARMUP else 1
            started = time.perf_counter()
            for _ in range(count):
                step()
            self.sync()
            seconds = time.perf_counter() - started
        else:
            count = WARMUP
        peaks = peak_memory(self.device)
        self.peaks[stage] = peaks.get(PEAK_GPU_RESERVED, peaks[PEAK_RSS])
        return Rate(count, count, seconds).seconds_per_unit
