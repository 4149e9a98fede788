"""The trial-steps a search is expected to run: the unit of its ETA and of --estimate."""

from __future__ import annotations

from augkd.search.prepare.space_file import load_space
from augkd.search.prepare.trial_steps import asha_stops, expected_trial_steps


def _space(scheduler: dict, num_samples: int = 8):
    raw = {
        "params": {"module3.a": {"type": "float", "low": 0.1, "high": 1}},
        "scheduler": scheduler,
        "num_samples": num_samples,
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
