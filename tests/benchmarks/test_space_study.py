"""benchmarks/space_study.py: the selection rules choose on val of the seeds they may use and
are scored on the held-out seed; a knob's effect counts as real only beyond two standard
errors."""

from __future__ import annotations

import importlib.util

import pytest

from tests.paths import REPO as ROOT

spec = importlib.util.spec_from_file_location("space_study", ROOT / "benchmarks" / "space_study.py")
space_study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(space_study)


def _row(index: int, val: tuple[float, float], held_out_test: float, choice: str) -> dict:
    return {
        "trial_id": f"t{index:02d}",
        "best_val_acc1_seed0": val[0],
        "best_val_acc1_seed1": val[1],
        "test_acc1_seed2": held_out_test,
        "mean_test_acc1": held_out_test,
        "param:module3.schedule": choice,
    }


def test_each_rule_scores_the_winner_it_can_see_on_the_held_out_seed():
    # Trial 1 looks best on seed 0 alone (a lucky seed); trial 2 is best over both seeds
    # and is the better config on the held-out seed.
    rows = [
        _row(0, (90.0, 90.0), 90.0, "linear"),
        _row(1, (99.0, 80.0), 85.0, "linear"),
        _row(2, (95.0, 95.0), 96.0, "step"),
        _row(3, (91.0, 91.0), 91.0, "step"),
    ]
    found = space_study.selection(rows, [0, 1, 2], budget=4, defaults=rows[0])
    assert found["1 seed"]["held_out_test_mean"] == 85.0  # always picks trial 1
    assert found["best possible (chosen on test)"]["held_out_test_mean"] == 96.0
    assert found["defaults"]["held_out_test_mean"] == 90.0
    assert found["1 seed"]["beats_defaults"] == 0.0
    # with half the trials, the 2-seed rule picks trial 2 whenever it is among them
    assert found["2 seeds, half the trials"]["held_out_test_mean"] > 85.0


def test_a_choice_counts_as_moving_results_only_beyond_two_standard_errors():
    space = {"params": {"module3.schedule": {"type": "categorical", "choices": ["linear", "step"]}}}
    noisy = [_row(i, (0, 0), 90.0 + (i % 2), ["linear", "step"][i // 2 % 2]) for i in range(8)]
    apart = [_row(i, (0, 0), [90.0, 95.0][i % 2] + 0.1 * (i % 4), ["linear", "step"][i % 2])
             for i in range(8)]  # fmt: skip
    assert not space_study.effects(noisy, space, "mean_test_acc1")["module3.schedule"]["moves"]
    effect = space_study.effects(apart, space, "mean_test_acc1")["module3.schedule"]
    assert effect["moves"]
    assert effect["choices"]["step"]["mean"] == pytest.approx(95.2)


def test_the_val_split_bound_chooses_on_the_first_seeds_test_and_is_scored_on_the_held_out():
    # Trial 1 has the best seed-0 test (what a perfect val split would see) but the worst
    # held-out test: a larger val split cannot undo the training seed's noise.
    rows = [
        _row(i, (90.0, 90.0), held, "linear") for i, held in enumerate([92.0, 88.0, 91.0, 90.0])
    ]
    for row, first_test in zip(rows, [90.0, 97.0, 93.0, 89.0], strict=True):
        row["test_acc1_seed0"] = first_test
    found = space_study.selection(rows, [0, 1, 2], budget=4, defaults=rows[0])
    assert found[space_study.BOUND]["held_out_test_mean"] == 88.0
    assert found[space_study.BOUND]["beats_defaults"] == 0.0


def test_seed_agreement_separates_the_val_splits_noise_from_the_training_seeds():
    # Each model's val ranks its own test perfectly; the seeds disagree completely.
    rows = []
    for i, (first, second) in enumerate([(90.0, 93.0), (91.0, 92.0), (92.0, 91.0), (93.0, 90.0)]):
        row = _row(i, (first, second), 0.0, "linear")
        row |= {"test_acc1_seed0": first, "test_acc1_seed1": second}
        rows.append(row)
    found = space_study.seed_agreement(rows, [0, 1])
    assert found["val_vs_own_test"] == pytest.approx(1.0)
    assert found["test_vs_other_seed_test"] == pytest.approx(-1.0)


@pytest.mark.parametrize("regime", ["fonts", "forms"])
def test_the_study_spaces_hold_every_key_they_do_not_search_at_the_default_spaces_base(regime):
    from augkd.search.prepare.space_file import load_space

    study = load_space(str(ROOT / "benchmarks" / "spaces" / f"{regime}_study.yaml"))
    default = load_space(regime)
    assert study.base_resolved == default.base_resolved
    assert {"module3.lr", "module3.weight_decay", "module2.steps"} == set(study.params)


def test_a_numeric_knobs_thirds_show_a_u_shape_its_rank_correlation_misses():
    space = {"params": {"module3.a": {"type": "float", "low": 0.0, "high": 1.0}}}
    rows = []
    for i, value in enumerate([0.1, 0.15, 0.2, 0.45, 0.5, 0.55, 0.8, 0.85, 0.9]):
        row = _row(i, (0, 0), 0.0, "linear") | {"param:module3.a": value}
        row["mean_test_acc1"] = 95.0 if 0.3 < value < 0.7 else 90.0
        rows.append(row)
    effect = space_study.effects(rows, space, "mean_test_acc1")["module3.a"]
    assert abs(effect["rho"]) < 0.3 and not effect["moves"]
    assert [t["mean"] for t in effect["thirds"]] == [90.0, 95.0, 90.0]
