"""How many Module-3 steps a search's trials are expected to run: the unit the search's ETA
counts in (augkd.search.run.progress) and that ``search.py --estimate`` prices.

The model: every trial reaches the first rung; of the trials that reach a rung, 1/eta (the
reduction factor) go on to the next, as ASHA keeps in the long run; trials are spread evenly
over the brackets. Early trials meet thin rungs and are promoted more often, so a real search
runs somewhat more than this; with no pruning at all every trial runs ``max_steps``.
"""

from __future__ import annotations

from dataclasses import dataclass

from augkd.search.prepare.space import SearchSpace


@dataclass(frozen=True)
class TrialSteps:
    expected: float
    """Trial-steps under the model above (all trials together)."""
    upper: float
    """Trial-steps if no trial were stopped early (num_samples x max_steps)."""
    max_steps: int
    rungs: list[float]
    """Bracket 0's rungs (optimizer steps)."""
    assumption: str


def steps_per_trial(max_steps: int, rungs: list[float], factor: float) -> float:
    """Expected Module-3 steps of one trial in a bracket with these rungs."""
    if not rungs:
        return float(max_steps)
    reaching, expected, last = 1.0, 0.0, 0.0
    for rung in [*rungs, float(max_steps)]:
        rung = min(rung, float(max_steps))
        expected += reaching * (rung - last)
        last = rung
        reaching /= factor
    return expected


def expected_trial_steps(space: SearchSpace, max_steps: int) -> TrialSteps:
    """The trial-steps of ``space``'s search with ASHA's last rung at ``max_steps``."""
    scheduler = space.scheduler
    trials = space.num_samples
    upper = float(trials * max_steps)
    if scheduler.name != "asha":
        return TrialSteps(upper, upper, max_steps, [], "no early stopping (FIFO)")
    per_bracket = [
        steps_per_trial(max_steps, scheduler.milestones(max_steps, b), scheduler.reduction_factor)
        for b in range(scheduler.brackets)
    ]
    expected = trials * sum(per_bracket) / len(per_bracket)
    assumption = (
        f"each rung keeps 1/{scheduler.reduction_factor:g} of the trials that reach it "
        "(ASHA's long-run rate; early trials meet thin rungs and may run longer)"
    )
    return TrialSteps(expected, upper, max_steps, scheduler.milestones(max_steps), assumption)
