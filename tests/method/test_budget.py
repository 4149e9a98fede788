"""Stage budgets in optimizer steps: epochs derived from the data size, the last one cut."""

from __future__ import annotations

from augkd.method.budget import step_budget, steps_per_epoch


def test_a_step_budget_derives_its_epochs_from_the_data_size():
    small = step_budget(600, None, train_size=100, batch_size=128)
    large = step_budget(600, None, train_size=1280, batch_size=128)
    assert (small.epochs, small.steps_per_epoch) == (600, 1)
    assert (large.epochs, large.steps_per_epoch) == (60, 10)
    assert small.steps == large.steps == 600


def test_the_last_epoch_takes_only_the_steps_left():
    budget = step_budget(7, None, train_size=300, batch_size=128)  # 3 steps an epoch
    assert budget.epochs == 3
    assert [budget.steps_in_epoch(e) for e in range(3)] == [3, 3, 1]


def test_explicit_epochs_win_over_steps():
    budget = step_budget(600, 4, train_size=300, batch_size=128)
    assert (budget.epochs, budget.steps) == (4, 12)


def test_a_last_batch_too_small_to_train_on_is_not_a_step():
    assert steps_per_epoch(129, 128, min_batch=2) == 1
    assert steps_per_epoch(130, 128, min_batch=2) == 2
    assert steps_per_epoch(10, 128) == 1
