"""The trial-steps a search is expected to run: the unit of its ETA and of --estimate."""

from __future__ import annotations

import pytest

from augkd.search.prepare.space_file import load_space
from augkd.search.prepare.trial_steps import (
    TrialSteps,
    asha_stops,
    expected_trial_steps,
    mixing_share,
    unpruned,
)


def _space(scheduler: dict, num_samples: int = 8, params: dict | None = None, **base):
    raw = {
        "params": params or {"module3.a": {"type": "float", "low": 0.1, "high": 1}},
        "scheduler": scheduler,
        "num_samples": num_samples,
        "base": {"data": {"source": "digits"}, **base},
    }
    return load_space("digits", raw)


def _curve(*values: float) -> list[dict]:
    return [{"step": 10 * (k + 1), "val": v} for k, v in enumerate(values)]


def test_asha_stops_a_trial_below_the_rungs_quantile_so_far_and_never_the_first():
    # rungs at steps 10 and 20 of 30; factor 2 keeps the upper half of what a rung saw
    trials = [_curve(5, 5, 5), _curve(4, 4, 4), _curve(6, 3, 3), _curve(7, 8, 8)]
    stops = asha_stops(trials, "val", 2, [[10, 20]] * 4)
    # the first goes on at every rung; the second is below it at 10; the third passes 10
    # (above 5 and 4) but is below the first at 20; the fourth leads everywhere
    assert stops == [2, 0, 1, 2]


def test_early_trials_meet_thin_rungs_so_more_than_the_long_run_rate_is_expected():
    steps = expected_trial_steps(_space({"grace_period": 10, "reduction_factor": 2}), 80)
    assert steps.rungs == [10, 20, 40, 80]
    assert steps.upper == 8 * 80
    long_run = 8 * (10 + 5 + 5 + 5)  # 1/2 of a rung's trials go on, as ASHA keeps in the end
    assert long_run < steps.expected < steps.upper
    assert steps.expected == expected_trial_steps(_space({"grace_period": 10}), 80).expected
    assert "1/2" in steps.assumption


def test_without_early_stopping_every_trial_runs_its_whole_budget():
    steps = expected_trial_steps(_space({"name": "fifo"}, num_samples=5), 300)
    assert steps.expected == steps.upper == 1500
    assert steps.rungs == []


def test_a_trial_builds_x_mix_for_its_first_a_share_of_the_budget_on_average_over_a():
    """x_mix is built while s < 1, the first a x max_steps steps: over the whole budget
    that is E[a]; a trial stopped before a x max_steps mixed throughout."""
    fifo = _space({"name": "fifo"})
    assert mixing_share(fifo, unpruned(1000, 4)) == pytest.approx(0.55)  # a ~ U[0.1, 1]
    fixed = _space({"name": "fifo"}, params={"module3.lr": {"type": "float", "low": 0.001,
                                                            "high": 0.01}},
                   module3={"a": 0.3})  # fmt: skip
    assert mixing_share(fixed, unpruned(1000, 4)) == pytest.approx(0.3)
    short = TrialSteps(400.0, 4000.0, 1000, [], "four trials stopped at step 100", ((100.0, 4.0),))
    assert mixing_share(fixed, short) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "base",
    [{"method": "ce"}, {"method": "no_mixup"}, {"module3": {"b": 1.0}}],
    ids=["student-batches", "student-only-schedule", "b-is-1"],
)
def test_a_trial_that_never_mixes_has_no_x_mix_steps(base):
    space = _space({"name": "fifo"}, params={"seed": {"type": "int", "low": 0, "high": 1}},
                   **base)  # fmt: skip
    assert mixing_share(space, unpruned(1000, 4)) == 0.0
