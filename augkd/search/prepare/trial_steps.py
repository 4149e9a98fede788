"""How many Module-3 steps a search's trials are expected to run: the unit the search's ETA
counts in (augkd.search.run.progress) and that ``search.py --estimate`` prices.

The model: Ray's asynchronous ASHA rule (``asha_stops``, the one home of that rule here; the
rung benchmarks replay it over recorded curves) replayed over DRAWS random orders of
``num_samples`` trials whose rank is the same at every rung, trials spread evenly over the
brackets. Early trials meet thin rungs and go on more often than the long-run 1/eta (the
first trial at a rung always goes on): on the shipped spaces this model expects about 5,900
trial-steps where the long-run rate said 2,500, and five searches ran 5,000-7,950. With no
pruning every trial runs ``max_steps``.

Not every trial-step costs the same: a trial builds x_mix through E, A and G only while the
mixup schedule's share s is below 1, its first ``a`` x ``max_steps`` steps; after that its
batches are [x ; x] (``mixing_share``). On fonts a step after that point took a third of one
before it, so a forecast that priced every step as mixing overstated the trials 1.55-1.75x.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
    lengths: tuple[tuple[float, float], ...] = ()
    """(steps a trial runs, how many trials run that many, on average) under the model."""


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


def simulated_trial_lengths(
    trials: int, brackets: list[list[float]], max_steps: int, factor: float, draws: int = DRAWS
) -> dict[float, float]:
    """How many trials (on average over the draws) stop after each number of steps."""
    rng = np.random.default_rng(0)
    rungs_of = [brackets[k % len(brackets)] for k in range(trials)]
    counts: dict[float, float] = {}
    for _ in range(draws):
        ranks = rng.permutation(trials)
        curves = [
            [{"step": s, "rank": float(rank)} for s in sorted({*rungs, float(max_steps)})]
            for rank, rungs in zip(ranks, rungs_of, strict=True)
        ]
        stops = asha_stops(curves, "rank", factor, rungs_of)
        for curve, stop in zip(curves, stops, strict=True):
            counts[curve[stop]["step"]] = counts.get(curve[stop]["step"], 0.0) + 1 / draws
    return dict(sorted(counts.items()))


def expected_trial_steps(space: SearchSpace, max_steps: int) -> TrialSteps:
    """The trial-steps of ``space``'s search with ASHA's last rung at ``max_steps``."""
    scheduler = space.scheduler
    trials = space.num_samples
    upper = float(trials * max_steps)
    if scheduler.name != "asha":
        return unpruned(max_steps, trials)
    brackets = [scheduler.milestones(max_steps, b) for b in range(scheduler.brackets)]
    lengths = simulated_trial_lengths(trials, brackets, max_steps, scheduler.reduction_factor)
    expected = sum(steps * count for steps, count in lengths.items())
    assumption = (
        f"ASHA's rule (keep the top 1/{scheduler.reduction_factor:g} of a rung so far) over "
        f"{DRAWS} random orders of {trials} trials that keep their rank at every rung"
    )
    rungs = scheduler.milestones(max_steps)
    return TrialSteps(expected, upper, max_steps, rungs, assumption, tuple(lengths.items()))


def unpruned(max_steps: int, trials: int) -> TrialSteps:
    """Every trial runs its whole budget (FIFO, or an evaluation's runs)."""
    upper = float(max_steps * trials)
    whole = ((float(max_steps), float(trials)),)
    return TrialSteps(upper, upper, max_steps, [], "no early stopping (FIFO)", whole)


PRIOR_POINTS = 101
"""Quantiles of a searched key's distribution that stand for its prior (deterministic)."""


def prior_values(space: SearchSpace, key: str, base_value: float) -> list[float]:
    """What an uninformed sampler draws for ``key``, as evenly spaced quantiles of its
    distribution (uniform, log-uniform, or each choice equally); the base value if unsearched."""
    param = space.params.get(key)
    if param is None:
        return [float(base_value)]
    if param.type == "categorical":
        return [float(choice) for choice in param.choices or []]
    quantiles = np.linspace(0.0, 1.0, PRIOR_POINTS)
    low, high = float(param.low), float(param.high)
    if param.type == "log_float":
        return list(np.exp(np.log(low) + quantiles * (np.log(high) - np.log(low))))
    return list(low + quantiles * (high - low))


def mixing_share(space: SearchSpace, steps: TrialSteps) -> float:
    """The share of the expected trial-steps that build x_mix: a trial with schedule
    parameter ``a`` mixes for its first a x max_steps steps (s reaches 1 at epoch a x T) and
    trains on [x ; x] after them; none mixes when b is 1 or the schedule is student_only.
    ``a`` is averaged over its prior, as the sampler's random draws pick it."""
    from augkd.method.plans import METHOD_PLANS

    base = space.base_config_object()
    plan = METHOD_PLANS[base.method]
    schedule = plan.schedule or base.module3.schedule
    if plan.batches != "mixup" or schedule == "student_only" or steps.expected <= 0:
        return 0.0
    if "module3.b" not in space.params and base.module3.b >= 1.0:
        return 0.0
    ends = [a * steps.max_steps for a in prior_values(space, "module3.a", base.module3.a)]
    mixed = sum(
        count * sum(min(length, end) for end in ends) / len(ends) for length, count in steps.lengths
    )
    return mixed / sum(length * count for length, count in steps.lengths)


def searched_teacher_terms(space: SearchSpace) -> list[str]:
    """The teacher terms a trial's Module-3 step may run: the searched choices, when the
    base method follows module3.teacher_term; else the one it runs."""
    from augkd.method.plans import METHOD_PLANS

    base = space.base_config_object()
    param = space.params.get("module3.teacher_term")
    follows = METHOD_PLANS[base.method].teacher_term is None
    if follows and param is not None and param.type == "categorical" and param.choices:
        return [str(choice) for choice in param.choices]
    return [base.module3.teacher_term]


def trial_step_s(measured: dict[str, Any], mixing: float) -> float:
    """A trial-step's seconds: a step that builds x_mix for the ``mixing`` share of them, a
    plain one for the rest, each the mean over the searched teacher terms."""
    plain = measured.get("plain_step_s_by_teacher_term")
    plain_s = sum(plain.values()) / len(plain) if plain else measured["step_s"]
    return mixing * measured["step_s"] + (1.0 - mixing) * plain_s
