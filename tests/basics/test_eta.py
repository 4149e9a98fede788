"""Rates, ETAs and progress lines (augkd.basics.eta): one home for every phase's progress."""

from __future__ import annotations

from augkd.basics.eta import (
    LineCadence,
    Rate,
    RunsProgress,
    format_duration,
)


def test_the_eta_is_what_is_left_at_the_rate_so_far():
    rate = Rate(done=30, total=120, seconds=60)
    assert rate.per_second == 0.5
    assert rate.eta_s == 180
    assert rate.describe("steps") == "30/120 steps, 30 steps/min, ETA 3m00s"


def test_the_units_done_before_the_clock_started_do_not_count_in_the_rate():
    rate = Rate(done=11, total=21, seconds=10, base=1)
    assert rate.per_second == 1.0 and rate.eta_s == 10
    assert "timing" in Rate(done=1, total=21, seconds=0.01, base=1).describe("steps")


def test_a_finished_job_says_how_long_it_took():
    assert Rate(4, 4, 75).describe("runs") == "4/4 runs, done in 1m15s"


def test_durations_read_at_a_glance():
    assert [format_duration(s) for s in (4.04, 42, 245, 7380)] == ["4.0s", "42s", "4m05s", "2h03m"]
    assert format_duration(float("nan")) == "?"


def test_a_log_gets_the_first_and_last_lines_and_one_per_interval_between():
    cadence = LineCadence(every_s=15)
    due = [cadence.due(now=t) for t in (0, 5, 14, 16, 20, 31)]
    assert due == [True, False, False, True, False, True]
    assert cadence.due(final=True, now=32)


def test_the_evaluation_counts_its_runs_down():
    lines: list[str] = []
    clock = iter([0.0, 60.0, 90.0]).__next__
    progress = RunsProgress(3, lines.append, clock=clock)
    progress.finished("rank1 seed 0")
    progress.finished("ce seed 0")
    assert lines[0] == "[evaluate] progress: 0/3 runs, timing"
    assert lines[1] == "[evaluate] progress: 1/3 runs, 1 runs/min, ETA 2m00s (rank1 seed 0)"
    assert lines[2].startswith("[evaluate] progress: 2/3 runs, 1.33 runs/min, ETA 45s")
