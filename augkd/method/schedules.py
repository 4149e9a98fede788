"""The mixup schedule s(e) of Module 3: the student-domain share at epoch e."""

from __future__ import annotations

import math
from collections.abc import Callable

ScheduleFn = Callable[[int, int, float, float], float]


def linear_schedule(epoch: int, total: int, a: float, b: float) -> float:
    return min(b + (1 - b) * epoch / (a * total), 1.0)


def step_schedule(epoch: int, total: int, a: float, b: float) -> float:
    return min(b + (1 - b) * math.floor(10 * epoch / (a * total)) / 10, 1.0)


def constant_student_schedule(epoch: int, total: int, a: float, b: float) -> float:
    """s = 1 throughout: the `no_mixup` ablation."""
    return 1.0


MIXUP_SCHEDULES: dict[str, ScheduleFn] = {
    "linear": linear_schedule,
    "step": step_schedule,
    "student_only": constant_student_schedule,
}


def mixup_schedule(kind: str, epoch: int, total: int, a: float, b: float) -> float:
    return MIXUP_SCHEDULES[kind](epoch, total, a, b)
