"""AuG-KD, its ablations and its baselines as data: which stages run, where the
student starts, what Module 3's batches hold and which loss they get."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class MethodPlan:
    module1: bool
    """Run (or load) data-free learning; the student then starts from S0."""
    module2: bool
    """Train an AnchorNet; without it z_a = z."""
    batches: Literal["mixup", "student"]
    """mixup: [x ; x_mix]; student: x only."""
    loss: Literal["distill", "ce"]
    schedule: str | None = None
    """Overrides module3.schedule (``student_only`` means s = 1 throughout)."""


METHOD_PLANS: dict[str, MethodPlan] = {
    "augkd": MethodPlan(module1=True, module2=True, batches="mixup", loss="distill"),
    "no_anchor": MethodPlan(module1=True, module2=False, batches="mixup", loss="distill"),
    "no_mixup": MethodPlan(
        module1=True, module2=True, batches="mixup", loss="distill", schedule="student_only"
    ),
    "kd": MethodPlan(module1=False, module2=False, batches="student", loss="distill"),
    "ce": MethodPlan(module1=False, module2=False, batches="student", loss="ce"),
    "dfkd": MethodPlan(module1=True, module2=False, batches="student", loss="ce"),
}
