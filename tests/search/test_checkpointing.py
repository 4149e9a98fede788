"""Checkpoint cadence: ASHA's rungs, the last epoch, and at most every N minutes."""

from augkd.search.checkpointing import CheckpointCadence, rung_epochs


def test_rung_epochs_are_where_asha_judges_a_trial():
    assert rung_epochs(4, 2, 20) == [4, 8, 16]
    assert rung_epochs(20, 3, 200) == [20, 60, 180]
    assert rung_epochs(2, 1.5, 10) == [2, 3, 5, 7]  # first epoch at or past 2, 3, 4.5, 6.75
    assert rung_epochs(30, 3, 20) == []


def test_checkpoints_only_at_rungs_and_the_last_epoch_within_the_interval():
    cadence = CheckpointCadence([4, 8], minutes=60)
    assert [e for e in range(1, 11) if cadence.due(e, 10)] == [4, 8, 10]


def test_zero_minutes_checkpoints_every_epoch():
    cadence = CheckpointCadence([], minutes=0)
    assert [e for e in range(1, 6) if cadence.due(e, 5)] == [1, 2, 3, 4, 5]
