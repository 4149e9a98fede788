"""Results over seeds: mean ± std, and paired differences with their standard error."""

from __future__ import annotations

import math

import pytest

from augkd.basics.seed_stats import format_mean_std, mean_std, paired_by_seed, paired_difference


def test_mean_std_is_the_sample_spread_and_one_value_shows_none():
    assert mean_std([90.0, 92.0, 94.0]) == (92.0, 2.0)
    assert format_mean_std([90.0, 92.0, 94.0]) == "92.0 ± 2.0"
    assert format_mean_std([90.0, 92.0], digits=2) == "91.00 ± 1.41"
    assert format_mean_std([91.25]) == "91.2" and format_mean_std([]) == "-"


def test_a_paired_difference_is_the_mean_per_seed_difference_and_its_standard_error():
    difference = paired_difference([90.0, 92.0, 93.0], [91.0, 94.0, 95.0])  # -1, -2, -2
    assert difference.mean == pytest.approx(-5 / 3) and difference.seeds == 3
    assert difference.error == pytest.approx(math.sqrt(1 / 3) / math.sqrt(3))
    assert str(difference) == "-1.7 ± 0.3" and difference.beyond()
    assert difference.ratio() == pytest.approx(difference.mean / difference.error)
    one = paired_difference([90.0], [91.5])
    assert str(one) == "-1.5" and not one.beyond() and math.isnan(one.ratio())
    assert paired_difference([], []) is None


def test_pairs_are_made_over_the_seeds_both_methods_ran():
    difference = paired_by_seed({1: 90.0, 2: 92.0, 3: 80.0}, {2: 91.0, 1: 89.0, 4: 70.0})
    assert (difference.mean, difference.seeds) == (1.0, 2)
