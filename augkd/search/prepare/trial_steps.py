"""How many Module-3 steps a search's trials are expected to run: the unit the search's ETA
counts in (augkd.search.run.progress) and that ``search.py --estimate`` prices.

The model: Ray's asynchronous ASHA rule (``asha_stops``, the one home of that rule here; the
rung benchmarks replay it over recorded curves) replayed over DRAWS random orders of
``num_samples`` trials whose rank is the same at every rung, trials spread evenly over the
brackets. Early trials meet thin rungs and go on more often than the long-run 1/eta (the
first trial at a rung always goes on): on the shipped spaces this model expects about 5,900
trial-steps where the long-run rate said 2,500, and five searches ran 5,000-7,950. With no
pruning every trial runs ``max_steps``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from augkd.search.prepare.space import SearchSpace

DRAWS = 400
"""Random trial orders averaged (seeded: the same space gives the same expectation)."""


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


def judged_at(trial: Sequence[dict], milestone: float) -> int | None:
    """Index of the trial's first report at or past ``milestone`` (where ASHA judges it)."""
    return next((i for i, r in enumerate(trial) if r["step"] >= milestone), None)


def asha_stops(
    trials: Sequence[Sequence[dict]], metric: str, factor: float, rungs_of: list[list[float]]
) -> list[int]:
    """Where Ray's asynchronous ASHA stops each trial (the index of its last report), in
    start order: a trial is judged at its first report at or past each rung of its bracket
    (``rungs_of``, one list per trial) and stops when below the 1 - 1/factor quantile of the
    values that bracket recorded at that rung so far."""
    recorded: dict[tuple, list[float]] = {}
    stops = []
    for trial, rungs in zip(trials, rungs_of, strict=True):
        stop = len(trial) - 1
        for milestone in rungs:
            index = judged_at(trial, milestone)
            if index is None or index == len(trial) - 1:
                break
            seen = recorded.setdefault((tuple(rungs), milestone), [])
            value = trial[index][metric]
            cutoff = np.nanpercentile(seen, (1 - 1 / factor) * 100) if seen else None
            seen.append(value)
            if cutoff is not None and value < cutoff:
                stop = index
                break
        stops.append(stop)
    return stops


def simulated_trial_steps(
    trials: int, brackets: list[list[float]], max_steps: int, factor: float, draws: int = DRAWS
) -> float:
    """Mean trial-steps of ``asha_stops`` over ``draws`` random orders of trials that keep
    their rank at every rung (a report at each rung and at ``max_steps``)."""
    rng = np.random.default_rng(0)
    rungs_of = [brackets[k % len(brackets)] for k in range(trials)]
    total = 0.0
    for _ in range(draws):
        ranks = rng.permutation(trials)
        curves = [
            [{"step": s, "rank": float(rank)} for s in sorted({*rungs, float(max_steps)})]
            for rank, rungs in zip(ranks, rungs_of, strict=True)
        ]
        stops = asha_stops(curves, "rank", factor, rungs_of)
        total += sum(curve[stop]["step"] for curve, stop in zip(curves, stops, strict=True))
    return total / draws


def expected_trial_steps(space: SearchSpace, max_steps: int) -> TrialSteps:
    """The trial-steps of ``space``'s search with ASHA's last rung at ``max_steps``."""
    scheduler = space.scheduler
    trials = space.num_samples
    upper = float(trials * max_steps)
    if scheduler.name != "asha":
        return TrialSteps(upper, upper, max_steps, [], "no early stopping (FIFO)")
    brackets = [scheduler.milestones(max_steps, b) for b in range(scheduler.brackets)]
    expected = simulated_trial_steps(trials, brackets, max_steps, scheduler.reduction_factor)
    assumption = (
        f"ASHA's rule (keep the top 1/{scheduler.reduction_factor:g} of a rung so far) over "
        f"{DRAWS} random orders of {trials} trials that keep their rank at every rung"
    )
    return TrialSteps(expected, upper, max_steps, scheduler.milestones(max_steps), assumption)
