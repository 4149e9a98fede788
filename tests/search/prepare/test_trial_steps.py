"""The trial-steps a search is expected to run: the unit of its ETA and of --estimate."""

from __future__ import annotations

from augkd.search.prepare.space_file import load_space
from augkd.search.prepare.trial_steps import expected_trial_steps, steps_per_trial


def _space(scheduler: dict, num_samples: int = 8):
    raw = {
        "params": {"module3.a": {"type": "float", "low": 0.1, "high": 1}},
        "scheduler": scheduler,
        "num_samples": num_samples,
    }
    return load_space("digits", raw)


def test_each_rung_keeps_one_trial_in_reduction_factor():
    # rungs 10, 20, 40 under a budget of 80: all run 10, half 10 more, a quarter 20 more,
    # an eighth the last 40
    assert steps_per_trial(80, [10, 20, 40], 2) == 10 + 5 + 5 + 5
    steps = expected_trial_steps(_space({"grace_period": 10, "reduction_factor": 2}), 80)
    assert steps.rungs == [10, 20, 40, 80]
    assert steps.upper == 8 * 80
    assert steps.expected == 8 * 25
    assert "1/2" in steps.assumption


def test_without_early_stopping_every_trial_runs_its_whole_budget():
    steps = expected_trial_steps(_space({"name": "fifo"}, num_samples=5), 300)
    assert steps.expected == steps.upper == 1500
    assert steps.rungs == []
