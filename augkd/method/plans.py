"""AuG-KD, its ablations and its baselines as data: which stages run, where the
student starts, what Module 3's batches hold and where the teacher's soft targets apply."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from augkd.basics.methods import Method, TeacherTermName


@dataclass(frozen=True)
class MethodPlan:
    module1: bool
    """Run (or load) data-free learning; the student then starts from S0."""
    module2: bool
    """Train an AnchorNet; without it z_a = z."""
    batches: Literal["mixup", "student"]
    """mixup: [x ; x_mix]; student: x only."""
    teacher_term: str | None = None
    """A key of TEACHER_TERMS; None follows module3.teacher_term (AuG-KD and its ablations)."""
    schedule: str | None = None
    """Overrides module3.schedule (``student_only`` means s = 1 throughout)."""


METHOD_PLANS: dict[Method, MethodPlan] = {
    "augkd": MethodPlan(module1=True, module2=True, batches="mixup"),
    "ce": MethodPlan(module1=False, module2=False, batches="student", teacher_term="none"),
    "kd": MethodPlan(module1=False, module2=False, batches="student", teacher_term="both"),
    "dfkd": MethodPlan(module1=True, module2=False, batches="student", teacher_term="none"),
    "no_anchor": MethodPlan(module1=True, module2=False, batches="mixup"),
    "no_mixup": MethodPlan(module1=True, module2=True, batches="mixup", schedule="student_only"),
}
"""One plan per name of augkd.basics.methods.METHODS, in its order."""


def methods_that(runs: Callable[[MethodPlan], bool]) -> str:
    """The methods whose plan ``runs`` holds for, as a sentence lists them ("a, b or c")."""
    names = [name for name, plan in METHOD_PLANS.items() if runs(plan)]
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _faded(ce_share: float, share: float, fade: bool) -> float:
    """With fade the KD weight (1 - u) shrinks by (1 - s): u' = 1 - (1 - u)(1 - s)."""
    return 1.0 - (1.0 - ce_share) * (1.0 - share) if fade else ce_share


TeacherTerm = Callable[[float, float, bool], tuple[float, float]]
"""(u, s, fade) -> the effective u of the real half x and of the mixed half x_mix.

Every sample's loss is u_i CE + (1 - u_i) tau^2 KL (method.md); leaving the teacher out
of a sample means u_i = 1 there, as method.md defines `none`."""

TEACHER_TERMS: dict[TeacherTermName, TeacherTerm] = {
    "both": lambda u, s, fade: (u, _faded(u, s, fade)),
    "mixed": lambda u, s, fade: (1.0, _faded(u, s, fade)),
    "none": lambda _u, _s, _fade: (1.0, 1.0),
}


def ce_shares(
    plan: MethodPlan, teacher_term: str, ce_share: float, share: float, fade: bool
) -> tuple[float, float]:
    """The effective u of each half this epoch; the plan's own term wins over the config's."""
    return TEACHER_TERMS[plan.teacher_term or teacher_term](ce_share, share, fade)
