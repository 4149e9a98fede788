"""Stop a diverging stage with one sentence that names the stage and the knob to turn."""

from __future__ import annotations

import math

import torch

from augkd.errors import DivergedError


def check_finite(value: float | torch.Tensor, what: str, knob: str) -> None:
    number = float(value)
    if not math.isfinite(number):
        raise DivergedError(
            f"{what} became {number} (training diverged); lower {knob} or check the data."
        )
