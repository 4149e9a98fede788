"""benchmarks/rung_study.py: ASHA replayed on full-budget curves counts the stops of trials
that would have tied the winner, and what each setting spends."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.paths import REPO as ROOT


@pytest.fixture(scope="module")
def rung_study():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(
            "rung_study", ROOT / "benchmarks" / "rung_study.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["rung_study"] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
        sys.modules.pop("rung_study", None)


def _curve(values: list[float], seconds_per_report: float = 1.0) -> list[dict]:
    """One trial's reports every 100 steps; ``best_val_acc1`` is the running best."""
    reports, best = [], 0.0
    for index, value in enumerate(values, start=1):
        best = max(best, value)
        reports.append({"step": 100 * index, "best_val_acc1": best,
                        "time_total_s": seconds_per_report * index})  # fmt: skip
    return reports


FAST = [80, 85, 88, 90, 90, 90, 90, 90]
SLOW_STARTER = [50, 60, 70, 80, 86, 89, 90, 90]  # ends tied with the winner
WEAK = [70, 72, 74, 75, 76, 77, 78, 78]


def test_a_slow_starter_that_ties_the_winner_is_counted_when_asha_stops_it(rung_study):
    trials = [_curve(FAST), _curve(SLOW_STARTER), _curve(WEAK)]
    replay = rung_study.study(trials, 100, 2.0, 1, margin=0.5, draws=1)
    assert replay.tied == 2
    assert replay.tied_stopped == 1.0  # the slow starter, below the winner at the first rung
    assert replay.winner_kept == 1.0
    assert replay.trial_seconds_share < 1.0


def test_a_first_rung_past_the_slow_start_keeps_every_tied_trial(rung_study):
    trials = [_curve(FAST), _curve(SLOW_STARTER), _curve(WEAK)]
    replay = rung_study.study(trials, 700, 2.0, 1, margin=0.5, draws=1)
    assert replay.tied_stopped == 0.0
    assert replay.completed == 2.0  # the weak trial still stops at step 700
